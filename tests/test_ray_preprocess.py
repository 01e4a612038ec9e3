"""Distributed preprocessing on a real local Ray: local folder and S3, pixel parity, split
stability, bad files."""

import io
import json
import random
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import dlcls
from dlcls import synthetic
from dlcls.core import storage, tables
from dlcls.core.preprocess import to_network_range
from dlcls.core.split import hash_split
from dlcls.ray.data import images_of, preprocess

pytestmark = pytest.mark.usefixtures("ray_local")
GEOMETRY = [32, 32, 3]


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    synthetic.write_data_set(root, per_class=8, size=40, seed=1)
    Image.fromarray(np.full((50, 60), 200, np.uint8)).save(root / "good" / "gray_jpeg.jpg", quality=90)
    return root


def _bad_files(root):
    """One file of each kind a real source holds and that must land in the errors table."""
    (root / "dent" / "empty.png").write_bytes(b"")
    (root / "dent" / "notes.png").write_bytes(b"this is a text file, not an image\n")
    good = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(good, format="JPEG")
    (root / "crack" / "truncated.jpg").write_bytes(good.getvalue()[:300])
    Image.new("L", (3000, 3000)).save(root / "stain" / "bomb.png")  # over the test's max_pixels
    return {"empty.png": "decode", "notes.png": "decode", "truncated.jpg": "decode", "bomb.png": "decode"}


def test_local_folder_end_to_end_with_every_kind_of_bad_file(image_tree, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(image_tree, source)
    expected_errors = _bad_files(source)
    out = str(tmp_path / "shards")
    manifest = preprocess(str(source), out, "compact", image_dimensions=GEOMETRY, max_pixels=1_000_000,
                          rows_per_shard=16)
    assert manifest["listed"] == 5 * 8 + 1 + len(expected_errors)
    assert manifest["rows"] + manifest["errors"] == manifest["listed"]
    assert manifest["errors"] == len(expected_errors)
    failures = tables.read_parquet(f"{out}/errors.parquet").to_pylist()
    assert {f["path"].rsplit("/", 1)[1]: f["stage"] for f in failures} == expected_errors
    assert all(f["error"] for f in failures)
    assert any("max_pixels" in f["error"] for f in failures)
    saved = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert saved["classes"] == sorted(synthetic.CLASSES)
    assert saved["image"]["width"] == 32 and saved["image"]["channels"] == 3
    assert sum(sum(c.values()) for c in saved["counts"].values()) == saved["rows"]
    shards = pq.read_table(tmp_path / "shards" / "shards")
    assert shards.num_rows == manifest["rows"]
    assert set(shards.column("split").to_pylist()) == {"train", "validation", "test"}
    assert shards.column_names == ["path", "relative_path", "label", "label_index", "split", "image"]


def test_pixels_equal_the_local_procedure(image_tree, tmp_path):
    out = str(tmp_path / "shards")
    manifest = preprocess(str(image_tree), out, "compact", image_dimensions=GEOMETRY)
    shards = pq.read_table(tmp_path / "shards" / "shards")
    handle = dlcls.read_dl_classifier("compact")
    dlcls.set_dl_classifier_param(handle, "image_dimensions", GEOMETRY)
    local = dlcls.preprocess_dl_classifier_images(shards.column("path").to_pylist(), handle)
    distributed = to_network_range(images_of(shards.column("image"), manifest["image"]), -127, 128)
    assert distributed.shape == local.shape == (shards.num_rows, 32, 32, 3)
    assert np.array_equal(distributed, local)


def test_split_is_stable_across_parallelism_shard_layout_and_listing_order(image_tree, tmp_path):
    splits = []
    for parallelism, rows in [(1, 64), (2, 5)]:
        out = str(tmp_path / f"shards-{parallelism}")
        preprocess(str(image_tree), out, "compact", image_dimensions=GEOMETRY, parallelism=parallelism,
                   rows_per_shard=rows, seed=7)
        table = pq.read_table(f"{out}/shards")
        splits.append(dict(zip(table.column("relative_path").to_pylist(), table.column("split").to_pylist())))
    assert splits[0] == splits[1]
    paths, labels = list(splits[0]), [p.split("/")[0] for p in splits[0]]
    order = list(range(len(paths)))
    random.Random(3).shuffle(order)
    shuffled = hash_split([paths[i] for i in order], [labels[i] for i in order], 70, 15, seed=7)
    assert {paths[i]: s for i, s in zip(order, shuffled)} == splits[0]
    counts = {s: list(splits[0].values()).count(s) for s in ("train", "validation", "test")}
    assert counts["train"] == 4 * 5 + 6  # floor(8 * 0.7) = 5 in four classes; "good" has 9 files: floor(6.3) = 6


def test_s3_source_and_output(image_tree, s3_bucket):
    fs, _ = storage.filesystem(s3_bucket)
    fs.put(str(image_tree) + "/", f"{s3_bucket[5:]}/images/", recursive=True)
    manifest = preprocess(f"{s3_bucket}/images", f"{s3_bucket}/shards", "compact", image_dimensions=GEOMETRY)
    assert manifest["rows"] == manifest["listed"] == 41 and manifest["errors"] == 0
    saved = json.loads(storage.read_bytes(f"{s3_bucket}/shards/manifest.json"))
    assert saved == {**manifest, "seconds": saved["seconds"]}
    shard = tables.read_parquet(f"{s3_bucket}/shards/shards/{manifest['shards'][0]}")
    assert shard.column("path").to_pylist()[0].startswith(f"{s3_bucket}/images/")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_file_names_with_glob_characters_are_read_as_they_are(where, tmp_path, monkeypatch, request):
    names = ["img[1].png", "[ab].png", "star*.png", "what?.png", "a.png"]
    source = tmp_path / "src"
    for label in ("x", "y"):
        (source / label).mkdir(parents=True)
        for i, name in enumerate(names):
            Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(source / label / name)
    if where == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        storage.filesystem(bucket)[0].put(f"{source}/", f"{bucket[5:]}/src/", recursive=True)
        source_uri, out = f"{bucket}/src", f"{bucket}/out[1]"
    else:  # relative paths, as a user types them
        monkeypatch.chdir(tmp_path)
        source_uri, out = "src", "out[1]"
    sibling = f"{out.replace('[1]', '1')}/manifest.json"  # what out[1] would match as a pattern
    storage.write_bytes_atomic(sibling, b"{}")
    manifest = preprocess(source_uri, out, "compact", image_dimensions=GEOMETRY, rows_per_shard=4)
    manifest = preprocess(source_uri, out, "compact", image_dimensions=GEOMETRY, rows_per_shard=4)  # over itself
    assert storage.read_bytes(sibling) == b"{}"  # another output, left alone
    assert (manifest["listed"], manifest["rows"], manifest["errors"]) == (10, 10, 0)
    shards = tables.read_parquet(f"{manifest['output']}/shards/{manifest['shards'][0]}")
    pixels = dict(zip(shards.column("relative_path").to_pylist(), images_of(shards.column("image"),
                                                                             manifest["image"])[:, 0, 0, 0]))
    assert all(pixels[p] == 40 * names.index(p.split("/")[1]) for p in pixels)  # each file's own pixels
    if where == "local":
        assert manifest["output"] == str(tmp_path / "out[1]") and manifest["source"] == str(source)


def test_too_many_errors_fail_clearly_and_leave_no_earlier_manifest(tmp_path):
    source = tmp_path / "src"
    (source / "a").mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(source / "a" / "ok.png")
    preprocess(str(source), str(tmp_path / "out"), "compact", image_dimensions=GEOMETRY)
    assert (tmp_path / "out" / "manifest.json").exists()
    with pytest.raises(dlcls.errors.NoImagesFoundError):  # a mistyped source leaves the output as it was
        preprocess(str(tmp_path / "scr"), str(tmp_path / "out"), "compact", image_dimensions=GEOMETRY)
    assert (tmp_path / "out" / "manifest.json").exists()
    (source / "a" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(dlcls.errors.WrongParamValueError, match="max-error-ratio"):
        preprocess(str(source), str(tmp_path / "out"), "compact", image_dimensions=GEOMETRY, max_error_ratio=0.2)
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert tables.read_parquet(str(tmp_path / "out" / "errors.parquet")).num_rows == 1
