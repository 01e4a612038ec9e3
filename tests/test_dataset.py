"""read_dl_classifier_data_set, split_dl_classifier_data_set, select_percentage_dl_classifier_data
against HALCON's behaviour (reference/halcon.md section 3)."""

import collections
import io
import itertools
import os

import numpy as np
import pytest
from PIL import Image

from dlcls import errors
from dlcls.procedures.dataset import (
    read_dl_classifier_data_set,
    select_percentage_dl_classifier_data,
    split_dl_classifier_data_set,
)

# Relative paths in HALCON's listing order: grouped by extension (bmp, jpg, png, tiff, tif, gif,
# jpeg, ...), any case, sorted by path within a group; files with other extensions are skipped.
TREE = [
    "pear/pear10_3.bmp",
    "apple/apple_02.JPG",
    "pear/sub/deep/pear.1.jpg",
    "apple/apple_01.png",
    "Äpfel grün/x.v2_7.PNG",
    "apple/apple 3.jpeg",
]
SKIPPED = ["pear/notes.txt", "pear/archive.png.zip", "apple/png", "apple/README"]


@pytest.fixture
def tree(tmp_path):
    for name in TREE + SKIPPED:
        path = tmp_path / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded by the listing")
    return tmp_path / "data"


def test_listing_order_and_paths(tree):
    files, labels, indices, classes = read_dl_classifier_data_set(str(tree), [])
    assert files == [f"{tree.as_posix()}/{name}" for name in TREE]
    assert (labels, indices, classes) == ([], [], [])
    assert read_dl_classifier_data_set(tree, None)[0] == files  # PathLike and None work too


@pytest.mark.parametrize("source, expected", [
    ("last_folder", ["pear", "apple", "deep", "apple", "Äpfel grün", "apple"]),
    ("file_name", ["pear10_3", "apple_02", "pear.1", "apple_01", "x.v2_7", "apple 3"]),
    # the whole trailing run of digits and underscores goes ("x.v2_7" -> "x.v"); "apple 3" keeps its space
    ("file_name_remove_index", ["pear", "apple", "pear.", "apple", "x.v", "apple "]),
])
def test_label_sources(tree, source, expected):
    files, labels, indices, classes = read_dl_classifier_data_set(str(tree), source)
    assert labels == expected
    assert classes == sorted(set(expected))
    assert [classes[i] for i in indices] == labels


def test_relative_directory_stays_relative(tree, monkeypatch):
    monkeypatch.chdir(tree.parent)
    files = read_dl_classifier_data_set("data/", "last_folder")[0]
    assert files[0] == "data/pear/pear10_3.bmp"
    assert all(os.path.isfile(f) for f in files)


def test_file_url_keeps_scheme(tree):
    files = read_dl_classifier_data_set(f"file://{tree.as_posix()}", [])[0]
    assert files[0] == f"file://{tree.as_posix()}/pear/pear10_3.bmp"


def test_follows_links(tree, tmp_path):
    (tmp_path / "linked").mkdir()
    os.symlink(tree / "apple", tmp_path / "linked" / "fruit")
    os.symlink(tmp_path / "linked", tmp_path / "linked" / "fruit" / "loop")  # a cycle ends, not recurses
    files, labels, _, _ = read_dl_classifier_data_set(str(tmp_path / "linked"), "last_folder")
    assert len(files) == 3 and set(labels) == {"fruit"}


def test_errors(tree, tmp_path):
    with pytest.raises(errors.WrongParamValueError, match="LabelSource not supported"):
        read_dl_classifier_data_set(str(tree), "parent_folder")
    with pytest.raises(errors.WrongParamValueError, match="path or URL string"):
        read_dl_classifier_data_set(["a", "b"], "last_folder")
    with pytest.raises(errors.NoImagesFoundError, match="does not exist") as missing:
        read_dl_classifier_data_set(str(tmp_path / "missing"), "last_folder")
    assert isinstance(missing.value, FileNotFoundError) and missing.value.code == 7908
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(errors.NoImagesFoundError, match="no image found"):
        read_dl_classifier_data_set(str(tmp_path / "empty"), [])


def test_empty_label_is_refused(tmp_path):
    (tmp_path / "123.png").write_bytes(b"x")
    with pytest.raises(errors.WrongParamValueError, match="empty label"):
        read_dl_classifier_data_set(str(tmp_path), "file_name_remove_index")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def test_s3_data_set(s3_bucket):
    import s3fs

    from dlcls.procedures.preprocess import preprocess_dl_classifier_images

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]})
    for key in ["good/g_1.png", "good/g_2.PNG", "bad/sub/b_1.png", "bad/readme.md"]:
        fs.pipe(f"{s3_bucket}/set/{key}", _png())
    fs.pipe(f"{s3_bucket}/settings/other.png", _png())  # shares the prefix "set" but is outside the folder
    files, labels, indices, classes = read_dl_classifier_data_set(f"{s3_bucket}/set/", "last_folder")
    assert files == [f"{s3_bucket}/set/{k}" for k in ["bad/sub/b_1.png", "good/g_1.png", "good/g_2.PNG"]]
    assert (labels, indices, classes) == (["sub", "good", "good"], [1, 0, 0], ["good", "sub"])

    class Geometry:
        def get_param(self, name):
            return {"image_width": 20, "image_height": 10, "image_num_channels": 3,
                    "image_range_min": -127.0, "image_range_max": 128.0}[name]

    images = preprocess_dl_classifier_images(files, Geometry())
    assert images.shape == (3, 10, 20, 3)
    np.testing.assert_array_equal(images[:, :, :, 0], 200 - 127)


# -- split and select -------------------------------------------------------------------------

COUNTS = {"b": 7, "a": 10, "c": 3}


def _data():
    files = [f"{label}/{i}.png" for label, n in COUNTS.items() for i in range(n)]
    return files, [f.split("/")[0] for f in files]


def test_split_floors_per_class():
    files, labels = _data()
    out = split_dl_classifier_data_set(files, labels, 70, 15, seed=42)
    counts = [collections.Counter(part) for part in out[1::2]]
    # a: floor(7)=7, floor(8.5)=8 -> 7/1/2; b: floor(4.9)=4, floor(5.95)=5 -> 4/1/2;
    # c: floor(2.1)=2, floor(2.55)=2 -> 2/0/1
    assert counts == [{"a": 7, "b": 4, "c": 2}, {"a": 1, "b": 1}, {"a": 2, "b": 2, "c": 1}]
    for images, part_labels in zip(out[0::2], out[1::2]):
        assert [f.split("/")[0] for f in images] == part_labels  # labels stay paired
    assert sorted(out[0] + out[2] + out[4]) == sorted(files)


def test_split_seed_and_shuffle():
    files, labels = _data()
    first = split_dl_classifier_data_set(files, labels, 50, 25, seed=7)
    assert split_dl_classifier_data_set(files, labels, 50, 25, seed=7) == first
    assert split_dl_classifier_data_set(files, labels, 50, 25, seed=8) != first
    assert first[1] != sorted(first[1])  # the training subset is shuffled as a whole, not grouped
    everything = split_dl_classifier_data_set(files, labels, 100, 0, seed=1)
    assert sorted(everything[0]) == sorted(files) and everything[2:] == ([], [], [], [])


@pytest.mark.parametrize("args, match", [
    ((["a.png"], ["a", "b"], 50, 20), "one label per file"),
    (([], [], 50, 20), "no image files"),
    ((["a.png"], ["a"], -1, 20), "TrainingPercent must be a number >= 0"),
    ((["a.png"], ["a"], 50, True), "ValidationPercent"),
    ((["a.png"], ["a"], 80, 30), "exceeds 100"),
    ((["a.png", "b.png"], ["a", 1], 50, 20), "all be names or all be indices"),
])
def test_split_errors(args, match):
    with pytest.raises(errors.WrongParamValueError, match=match):
        split_dl_classifier_data_set(*args)


@pytest.mark.parametrize("percent, expected", [(10, [1, 1, 1]), (50, [5, 3, 1]), (0, [1, 1, 1]), (80, [8, 5, 2])])
def test_select_percentage_counts(percent, expected):
    files, labels = _data()
    out_files, out_labels = select_percentage_dl_classifier_data(files, labels, percent, seed=3)
    groups = [label for label, _ in itertools.groupby(out_labels)]
    assert groups == ["a", "b", "c"]  # grouped by class in sorted order
    assert [out_labels.count(c) for c in groups] == expected  # max(1, floor(n * p / 100))
    assert [f.split("/")[0] for f in out_files] == out_labels and set(out_files) <= set(files)
    assert select_percentage_dl_classifier_data(files, labels, percent, seed=3) == (out_files, out_labels)


def test_select_percentage_100_and_errors():
    files, labels = _data()
    assert select_percentage_dl_classifier_data(files, labels, 100) == (files, labels)
    for args, match in [((files, labels, 101), r"\[0, 100\]"), ((files, labels, -5), ">= 0"),
                        (([], [], 50), "no image files"), ((files, labels[:-1], 50), "one label per file")]:
        with pytest.raises(errors.WrongParamValueError, match=match):
            select_percentage_dl_classifier_data(*args)
