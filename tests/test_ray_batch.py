"""Offline classification and evaluation on a real local Ray: local folder and S3, preprocessed
shards, parity with apply_dl_classifier, evaluation figures against the local procedures, bad
files, and a run killed halfway and resumed."""

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import dlcls
from dlcls import synthetic
from dlcls.cli import main
from dlcls.core import storage, tables
from dlcls.procedures.confusion import gen_confusion_matrix, gen_interactive_confusion_matrix
from dlcls.ray.batch import _predict_stage, classify, evaluate
from dlcls.ray.data import preprocess

pytestmark = pytest.mark.usefixtures("ray_local")
ROOT = Path(__file__).resolve().parent.parent
CLASSIFY_COLUMNS = ["path", "predicted_class", "predicted_class_index", "confidence", "top_classes",
                    "top_confidences", "model_id"]
EVALUATION_COLUMNS = ["path", "ground_truth", "predicted", "confidence", "correct", "top_classes", "top_confidences"]


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    synthetic.write_data_set(root, per_class=6, size=40, seed=1)
    Image.fromarray(np.full((50, 60, 3), 120, np.uint8)).save(root / "good" / "photo.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def model_file(image_tree, tmp_path_factory):
    """compact at 32x32 for the five classes, trained a few steps so that its predictions vary."""
    handle = dlcls.read_dl_classifier("compact")
    for name, value in [("classes", list(synthetic.CLASSES)), ("image_dimensions", [32, 32, 3]),
                        ("batch_size", 8), ("runtime", "cpu"), ("learning_rate", 0.01)]:
        dlcls.set_dl_classifier_param(handle, name, value)
    files, labels, _, _ = dlcls.read_dl_classifier_data_set(str(image_tree), "last_folder")
    images = dlcls.preprocess_dl_classifier_images(files, handle)
    for step in range(6):
        pick = np.random.default_rng(step).choice(len(files), 8, replace=False)
        dlcls.train_dl_classifier_batch(images[pick], handle, [labels[i] for i in pick])
    path = tmp_path_factory.mktemp("model") / "model.hdl"
    dlcls.write_dl_classifier(handle, str(path))
    return str(path)


def _local_confidences(model: str, paths: list[str]) -> dict[str, dict[str, float]]:
    """{path: {class: confidence}} of apply_dl_classifier(preprocess_dl_classifier_images(file))."""
    handle = dlcls.read_dl_classifier(model)
    result = dlcls.apply_dl_classifier(dlcls.preprocess_dl_classifier_images(paths, handle), handle)
    classes = dlcls.get_dl_classifier_param(handle, "classes")
    return {p: dict(zip(classes, row.tolist())) for p, row in zip(paths, result.confidences)}


def _assert_parity(table, local: dict) -> None:
    rows = table.to_pylist()
    assert {r["path"] for r in rows} == set(local)
    for r in rows:
        assert len(r["top_classes"]) == 5  # top-k = min(5, classes): all five, so every confidence is compared
        got = dict(zip(r["top_classes"], r["top_confidences"]))
        assert max(abs(got[c] - v) for c, v in local[r["path"]].items()) < 1e-6
        assert r["top_confidences"] == sorted(r["top_confidences"], reverse=True)
        assert r["confidence"] == r["top_confidences"][0]


def _bad_files(root: Path) -> dict[str, str]:
    (root / "dent" / "empty.png").write_bytes(b"")
    (root / "crack" / "notes.png").write_bytes(b"a text file, not an image\n")
    good = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(good, format="JPEG")
    (root / "stain" / "truncated.jpg").write_bytes(good.getvalue()[:300])
    return {"empty.png": "decode", "notes.png": "decode", "truncated.jpg": "decode"}


def test_classify_folder_end_to_end_with_bad_files_parity_and_rerun(image_tree, model_file, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(image_tree, source)
    bad = _bad_files(source)
    out = tmp_path / "out"
    manifest = classify(model_file, str(source), str(out), rows_per_shard=8)
    assert (manifest["listed"], manifest["rows"], manifest["errors"]) == (34, 31, 3)
    assert manifest["shards"] == manifest["computed"] == 5 and manifest["reused"] == 0
    assert manifest["model"]["id"] == hashlib.sha256(Path(model_file).read_bytes()).hexdigest()
    assert json.loads((out / "manifest.json").read_text()) == manifest

    predictions = pq.read_table(out / "predictions")
    assert predictions.column_names == CLASSIFY_COLUMNS
    assert predictions.num_rows == 31 and len(set(predictions["path"].to_pylist())) == 31
    assert set(predictions["model_id"].to_pylist()) == {manifest["model"]["id"]}
    failures = pq.read_table(out / "errors").to_pylist()
    assert {f["path"].rsplit("/", 1)[1]: f["stage"] for f in failures} == bad and all(f["error"] for f in failures)
    _assert_parity(predictions, _local_confidences(model_file, predictions["path"].to_pylist()))
    frame = pytest.importorskip("pandas").read_parquet(out / "predictions")
    assert list(frame.columns) == CLASSIFY_COLUMNS and len(frame) == 31
    assert list(frame.iloc[0]["top_classes"]) == predictions["top_classes"][0].as_py()

    # A re-run does only what is missing: here two parts deleted by hand.
    parts = sorted((out / "predictions").glob("part-*.parquet"))
    kept = {p.name: p.stat().st_mtime_ns for p in parts[2:]}
    for p in parts[:2]:
        p.unlink()
    again = classify(model_file, str(source), str(out), rows_per_shard=8)
    assert (again["computed"], again["reused"], again["rows"]) == (2, 3, 31)
    assert {p.name: p.stat().st_mtime_ns for p in parts[2:]} == kept
    assert pq.read_table(out / "predictions").num_rows == 31
    with pytest.raises(dlcls.errors.WrongParamValueError, match="other settings .*top_k"):
        classify(model_file, str(source), str(out), rows_per_shard=8, top_k=2)


def test_evaluate_figures_equal_the_local_procedures(image_tree, model_file, tmp_path):
    out = tmp_path / "evaluation"
    manifest = evaluate(model_file, str(image_tree), str(out), rows_per_shard=8, top_k=3)
    files, labels, _, _ = dlcls.read_dl_classifier_data_set(str(image_tree), "last_folder")
    handle = dlcls.read_dl_classifier(model_file)
    results, predicted, _ = dlcls.apply_dl_classifier_batchwise(files, handle)
    top1 = [p[0] for p in predicted]

    table = pq.read_table(out / "predictions.parquet")
    assert table.column_names == EVALUATION_COLUMNS
    assert table["path"].to_pylist() == files and table["ground_truth"].to_pylist() == labels
    assert table["predicted"].to_pylist() == top1
    assert table["correct"].to_pylist() == [g == p for g, p in zip(labels, top1)]
    assert {len(t) for t in table["top_classes"].to_pylist()} == {3}

    rows = {r["class"]: r for r in pq.read_table(out / "metrics.parquet").to_pylist()}
    assert list(rows) == [*synthetic.CLASSES, "global"]
    for name in [*synthetic.CLASSES, "global"]:
        expected = dlcls.evaluate_dl_classifier(labels, handle, results,
                                                ["top1_error", "top5_error", "precision", "recall", "f_score"], name)
        got = [rows[name][m] for m in ["top1_error", "top5_error", "precision", "recall", "f_score"]]
        assert got == pytest.approx(expected, abs=0, rel=1e-12)
    assert rows["global"]["support"] == len(files) and rows["good"]["support"] == labels.count("good")
    assert manifest["metrics"][-1] == rows["global"]

    matrix = dlcls.evaluate_dl_classifier(labels, handle, results, "absolute_confusion_matrix", "global")
    long = pq.read_table(out / "confusion_matrix.parquet").to_pylist()
    index = {c: i for i, c in enumerate(synthetic.CLASSES)}
    assert len(long) == 25 and all(r["count"] == matrix[index[r["predicted"]], index[r["ground_truth"]]] for r in long)

    local = tmp_path / "local"
    gen_confusion_matrix(labels, top1, output=str(local.with_suffix(".png")))
    gen_interactive_confusion_matrix(files, labels, top1, str(local.with_suffix(".html")))
    assert (out / "confusion_matrix.png").read_bytes() == local.with_suffix(".png").read_bytes()
    assert (out / "confusion_matrix.html").read_bytes() == local.with_suffix(".html").read_bytes()
    assert pq.read_table(out / "errors.parquet").num_rows == 0
    assert json.loads((out / "manifest.json").read_text())["rows"] == len(files)


def test_preprocessed_shards_classify_every_row_and_evaluate_the_test_split(image_tree, model_file, tmp_path):
    shards = tmp_path / "shards"
    prepared = preprocess(str(image_tree), str(shards), model_file, rows_per_shard=8)
    classified = classify(model_file, str(shards), str(tmp_path / "classified"))
    assert classified["input_kind"] == "shards" and classified["rows"] == prepared["rows"] == 31
    table = pq.read_table(tmp_path / "classified" / "predictions")
    _assert_parity(table, _local_confidences(model_file, table["path"].to_pylist()))

    other = dlcls.read_dl_classifier(model_file)
    dlcls.set_dl_classifier_param(other, "image_dimensions", [24, 24, 3])
    dlcls.write_dl_classifier(other, str(tmp_path / "24.hdl"))
    with pytest.raises(dlcls.errors.WrongParamValueError, match="32x32x3 .* 24x24x3: preprocess again"):
        classify(str(tmp_path / "24.hdl"), str(shards), str(tmp_path / "mismatch"))

    evaluated = evaluate(model_file, str(shards), str(tmp_path / "evaluation"))
    test = pq.read_table(tmp_path / "evaluation" / "predictions.parquet")
    assert evaluated["rows"] == test.num_rows == sum(prepared["counts"]["test"].values())
    listing = pq.read_table(shards / "listing.parquet").to_pylist()
    assert sorted(test["path"].to_pylist()) == sorted(r["path"] for r in listing if r["split"] == "test")
    local = _local_confidences(model_file, test["path"].to_pylist())
    for row in test.to_pylist():
        got = dict(zip(row["top_classes"], row["top_confidences"]))
        assert max(abs(got[c] - v) for c, v in local[row["path"]].items()) < 1e-6
        assert row["ground_truth"] == row["path"].split("/")[-2]


def test_mismatched_inputs_fail_before_any_work(image_tree, model_file, tmp_path):
    with pytest.raises(dlcls.errors.InvalidLabelsError, match="not classes of the model"):
        evaluate(model_file, str(image_tree), str(tmp_path / "a"), label_source="file_name")
    only_two = tmp_path / "two"
    for name in ("good", "dent"):
        shutil.copytree(image_tree / name, only_two / name)
    with pytest.raises(dlcls.errors.WrongParamValueError, match="no images of the classes"):
        evaluate(model_file, str(only_two), str(tmp_path / "b"))
    with pytest.raises(dlcls.errors.ModelFileNotFoundError, match="trained model file"):
        classify(str(tmp_path / "missing.hdl"), str(image_tree), str(tmp_path / "c"))
    assert not any((tmp_path / name / "job.json").exists() for name in "abc")


@pytest.mark.parametrize("resources, expected", [
    ({"CPU": 16, "GPU": 2}, dict(size=2, num_gpus=1, num_cpus=1, gpu=True, threads=1)),
    ({"CPU": 2}, dict(size=1, num_gpus=0, num_cpus=0, gpu=False, threads=2)),
    ({"CPU": 64}, dict(size=16, num_gpus=0, num_cpus=0, gpu=False, threads=2)),
])
def test_predict_actors_take_a_gpu_each_where_there_are_gpus_and_otherwise_share_the_cpus(resources, expected):
    import ray

    cluster = type("Cluster", (), {"data": ray.data, "cluster_resources": staticmethod(lambda: resources)})
    stage, gpu, threads = _predict_stage(cluster, None)
    assert (stage["compute"].max_size, stage.get("num_gpus", 0), stage["num_cpus"], gpu, threads) == tuple(
        expected.values())
    assert stage["num_cpus"] != 1 or stage.get("num_gpus")  # never the load tasks' resources: no fusion


def test_s3_input_model_and_output(image_tree, model_file, s3_bucket):
    fs, _ = storage.filesystem(s3_bucket)
    fs.put(str(image_tree) + "/", f"{s3_bucket[5:]}/images/", recursive=True)
    fs.put(model_file, f"{s3_bucket[5:]}/model.hdl")
    model = f"{s3_bucket}/model.hdl"
    manifest = classify(model, f"{s3_bucket}/images", f"{s3_bucket}/predictions", rows_per_shard=16)
    assert manifest["rows"] == manifest["listed"] == 31 and manifest["errors"] == 0
    assert json.loads(storage.read_bytes(f"{s3_bucket}/predictions/manifest.json")) == manifest
    table = tables.read_parquet(f"{s3_bucket}/predictions/{manifest['tables']['predictions'][0]}")
    assert table.num_rows == 16 and table["path"][0].as_py().startswith(f"{s3_bucket}/images/")
    evaluation = evaluate(model, f"{s3_bucket}/images", f"{s3_bucket}/evaluation", rows_per_shard=16)
    assert evaluation["rows"] == 31
    for name in ("predictions.parquet", "metrics.parquet", "confusion_matrix.parquet", "confusion_matrix.png",
                 "confusion_matrix.html", "manifest.json"):
        assert fs.exists(f"{s3_bucket[5:]}/evaluation/{name}")
    frame = pytest.importorskip("pandas").read_parquet(f"{s3_bucket}/evaluation/metrics.parquet",
                                                       storage_options=storage.storage_options(s3_bucket))
    assert list(frame["class"]) == [*synthetic.CLASSES, "global"]


def test_commands_print_a_summary_naming_every_output(image_tree, model_file, tmp_path, capsys):
    assert main(["classify", model_file, str(image_tree), "--out", str(tmp_path / "c"), "--rows-per-shard", "16"]) == 0
    out = capsys.readouterr().out
    assert "31 images, 31 classified, 0 errors; 2 shards (2 computed)" in out
    for name in ["predictions/", "errors/", "manifest.json"]:
        assert str(tmp_path / "c" / name) in out
    assert main(["evaluate", model_file, str(image_tree), "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "top-1 error" in out and "scratch" in out and "F-score" in out
    for name in ["predictions.parquet", "metrics.parquet", "confusion_matrix.png", "confusion_matrix.html"]:
        assert str(tmp_path / "e" / name) in out


def test_a_killed_run_resumes_with_every_input_exactly_once(tmp_path):
    """SIGKILL the whole job (driver and its local Ray) once some parts exist; the re-run computes
    only the rest and leaves the parts of the first run untouched."""
    synthetic.write_data_set(tmp_path / "images", per_class=16, size=48, seed=5)  # 80 images, 20 shards
    handle = dlcls.read_dl_classifier("resnet18")  # slow enough per shard to stop the job in the middle
    for name, value in [("classes", list(synthetic.CLASSES)), ("image_dimensions", [192, 192, 3]),
                        ("runtime", "cpu")]:
        dlcls.set_dl_classifier_param(handle, name, value)
    handle.write(str(tmp_path / "model.hdl"), include_optimizer=False)
    out, parts = tmp_path / "out", tmp_path / "out" / "predictions"
    command = [sys.executable, str(ROOT / "jobs" / "classify.py"), str(tmp_path / "model.hdl"),
               str(tmp_path / "images"), "--out", str(out), "--rows-per-shard", "4", "--batch-size", "2",
               "--num-cpus", "2"]
    ray_tmp = tempfile.mkdtemp(prefix="rk", dir="/tmp")  # short: Ray's socket paths live below it
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    first = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180  # Ray starting on a busy 2-core machine can be slow
        while not 2 <= len(list(parts.glob("part-*.parquet"))) and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        _kill_left_over(ray_tmp)
        done = {p.name: p.stat().st_mtime_ns for p in parts.glob("part-*.parquet")}
        assert 2 <= len(done) < 20, f"could not stop the job in the middle: {len(done)} parts"
        assert not (out / "manifest.json").exists()

        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        assert f"({20 - len(done)} computed, {len(done)} done by an earlier run)" in second.stdout
    finally:
        _kill_left_over(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert {p.name: p.stat().st_mtime_ns for p in parts.glob("part-*.parquet") if p.name in done} == done
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["computed"], manifest["reused"], manifest["rows"]) == (20 - len(done), len(done), 80)
    paths = pq.read_table(parts)["path"].to_pylist()
    listed = dlcls.read_dl_classifier_data_set(str(tmp_path / "images"), [])[0]
    assert len(paths) == len(set(paths)) == 80 and sorted(paths) == sorted(listed)


def _kill_left_over(ray_tmp: str) -> None:
    """SIGKILL the processes of the killed job that outlived it: Ray's workers are not in its
    process group and die only once they notice that their raylet is gone; they are found by the
    RAY_TMPDIR this test gave the job (their command lines are renamed to ray::...)."""
    marker = f"RAY_TMPDIR={ray_tmp}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    os.kill(int(entry), signal.SIGKILL)
        except OSError:
            continue
