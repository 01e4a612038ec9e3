"""`dlcls demo` end to end at small size: every step on the test session's Ray, on local files
and on the localhost S3 endpoint; every output it names is there and readable."""

import numpy as np
import pytest
from PIL import Image

from dlcls import read_dl_classifier, synthetic
from dlcls.cli import main
from dlcls.core import storage, tables
from dlcls.ray.demo import DemoConfig, _start_over, locations

pytestmark = pytest.mark.usefixtures("ray_local")

SMALL = ["--per-class", "12", "--incoming", "10", "--image-size", "32", "--epochs", "2", "--requests", "3"]
EVALUATION = ["predictions.parquet", "metrics.parquet", "confusion_matrix.parquet", "errors.parquet",
              "confusion_matrix.png", "confusion_matrix.html", "manifest.json"]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_demo_runs_every_step_and_writes_every_output(where, tmp_path, request, capsys):
    store = f"{request.getfixturevalue('s3_bucket')}/demo" if where == "s3" else str(tmp_path / "work")
    extra = ["--store", store] if where == "s3" else []
    assert main(["demo", "--workdir", str(tmp_path / "work"), *SMALL, *extra]) == 0
    printed = capsys.readouterr().out
    for step in ("[1/6] generate", "[2/6] preprocess", "[3/6] train", "[4/6] evaluate", "[5/6] classify",
                 "[6/6] serve", "test accuracy", "the service answered 3 of 3 requests"):
        assert step in printed, step

    shards = storage.read_bytes(f"{store}/shards/manifest.json")
    assert b'"rows": 60' in shards
    model = read_dl_classifier(f"{store}/model/model_best.hdl")
    assert model.get_param("classes") == list(synthetic.CLASSES) and model.geometry[:2] == (32, 32)
    history = tables.read_parquet(f"{store}/model/model_metrics.parquet")
    assert history.column("epoch").to_pylist() == [1, 2]
    for name in EVALUATION:
        assert storage.exists(f"{store}/evaluation/{name}"), name
    metrics = tables.read_parquet(f"{store}/evaluation/metrics.parquet").to_pandas()
    assert list(metrics["class"]) == [*synthetic.CLASSES, "global"]
    assert metrics.set_index("class").loc["global", "support"] == 10  # the test split: 2 per class
    predictions = storage.read_bytes(f"{store}/predictions/manifest.json")
    assert b'"rows": 10' in predictions and b'"errors": 0' in predictions
    for line in printed.splitlines():  # the summary names where every output lies
        if line.startswith("  evaluation ") or line.startswith("  predictions "):
            assert store in line


def test_a_run_removes_the_outputs_of_an_earlier_one_and_nothing_else(tmp_path):
    config = DemoConfig(workdir=str(tmp_path))
    where = locations(config)
    for name in ("images", "shards", "runs", "evaluation", "predictions"):
        storage.write_bytes_atomic(f"{where[name]}/old.txt", b"from an earlier run")
    (tmp_path / "notes.txt").write_text("mine")
    _start_over(config, where)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["model", "notes.txt"]  # runs/ lived under model/


def test_generated_images_are_reproducible_from_the_seed(tmp_path):
    a = synthetic.write_unlabelled(tmp_path / "a", 4, size=32, seed=7)
    b = synthetic.write_unlabelled(tmp_path / "b", 4, size=32, seed=7)
    c = synthetic.write_unlabelled(tmp_path / "c", 4, size=32, seed=8)
    pixels = [[np.asarray(Image.open(p)) for p in files] for files in (a, b, c)]
    assert all(np.array_equal(x, y) for x, y in zip(pixels[0], pixels[1]))
    assert not all(np.array_equal(x, z) for x, z in zip(pixels[0], pixels[2]))
    assert [p.rsplit("/", 1)[1] for p in a] == [f"part_{n:05d}.png" for n in range(4)]
