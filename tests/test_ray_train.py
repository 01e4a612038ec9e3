"""Data-parallel training on a real local Ray: learning, S3 checkpoints, determinism, a killed
worker, a resumed driver, two nodes."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import separable_batch
from PIL import Image

import dlcls
from dlcls.cli import main
from dlcls.core import storage
from dlcls.core.preprocess import to_network_range
from dlcls.ray.data import images_of, preprocess
from dlcls.ray.sharding import shares
from dlcls.ray.train import train
from dlcls.ray.train_loop import Schedule

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"batch_size": 16, "learning_rate": 0.01}
SCHEDULE = dict(epochs=3, seed=11, augmentation={"brightness_variation": 10})  # keeps where the square is


@pytest.fixture(scope="module")
def shards(ray_local, tmp_path_factory):
    """Preprocessed shards of a separable 3-class set (a bright square in one quadrant)."""
    root = tmp_path_factory.mktemp("train-data")
    images, labels = separable_batch(np.random.default_rng(5), 300)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / "images" / ["left", "right", "bottom"][label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image + 127, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    preprocess(str(root / "images"), str(root / "shards"), "compact", image_dimensions=[32, 32, 3],
               rows_per_shard=32, seed=1)
    return str(root / "shards")


def _without_ray_address() -> dict:
    """The environment for a subprocess that starts a Ray of its own."""
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


def _weights(uri: str) -> dict:
    return dlcls.read_dl_classifier(uri).network.state_dict()


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_shares_of_a_step_always_add_up_to_the_batch():
    assert shares(32, 2) == [16, 16]
    assert shares(10, 3) == [4, 3, 3]
    assert all(sum(shares(b, n)) == b for b in range(1, 40) for n in range(1, 6))


@pytest.fixture(scope="module")
def two_worker_run(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("run-a")
    lines = []
    result = train(shards, "compact", str(out / "model.hdl"), Schedule(**SCHEDULE), workers=2, params=PARAMS,
                   progress=lines.append)
    return result, lines


def test_two_workers_learn_and_write_every_output(two_worker_run, shards):
    result, lines = two_worker_run
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3] and [h["epoch"] for h in lines] == [1, 2, 3]
    assert all(h["workers"] == 2 for h in history)
    assert min(h["validation_error"] for h in history) <= 0.05  # chance is 2/3
    outputs = result["outputs"]
    metrics = pq.read_table(outputs["metrics"]).to_pylist()
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert Image.open(outputs["plot"]).size[0] > 0
    assert result["best"]["epoch"] == min(range(3), key=lambda i: (history[i]["validation_error"], -i)) + 1
    # the model file reads back and gives the validation error the workers measured
    handle = dlcls.read_dl_classifier(outputs["model"])
    table = pq.read_table(f"{shards}/shards")
    validation = table.filter(pq.ParquetDataset(f"{shards}/shards").read().column("split").to_numpy() == "validation")
    manifest = json.loads(Path(shards, "manifest.json").read_text())
    images = to_network_range(images_of(validation.column("image"), manifest["image"]), -127, 128)
    predicted = np.array(dlcls.apply_dl_classifier(images, handle).get("all", "predicted_class_indices"))
    measured = np.mean(predicted != validation.column("label_index").to_numpy())
    assert measured == pytest.approx(history[-1]["validation_error"])
    # ... and, image by image, the very predictions the workers made
    pairs = sorted(zip(validation.column("relative_path").to_pylist(), predicted.tolist()))
    assert hashlib.sha256(json.dumps(pairs).encode()).hexdigest() == history[-1]["validation_predictions"]
    assert result["attempts"] == [0]
    best = dlcls.read_dl_classifier(outputs["best"])
    assert Path(outputs["best"]).read_bytes() == Path(result["run"], "best.hdl").read_bytes()
    assert dlcls.get_dl_classifier_param(best, "classes") == manifest["classes"]


def test_same_seed_same_model_and_a_killed_worker_loses_no_epoch(two_worker_run, shards, tmp_path):
    marker = tmp_path / "killed"
    schedule = Schedule(**SCHEDULE, fail_once_at_epoch=2, fail_marker=str(marker))
    result = train(shards, "compact", str(tmp_path / "model.hdl"), schedule, workers=2, params=PARAMS)
    assert marker.exists()  # a worker process really died
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    # The second attempt started from a checkpoint, not from scratch: epoch 2's, or epoch 1's when the
    # worker died before Ray Train's controller had taken in the report it had just made.
    assert result["attempts"][0] == 0 and result["attempts"][1] in (1, 2) and len(result["attempts"]) == 2
    # resumed from the checkpoint of epoch 2, the run ends exactly where the uninterrupted one did
    assert _same(_weights(result["outputs"]["model"]), _weights(two_worker_run[0]["outputs"]["model"]))


def test_one_worker_reaches_the_validation_error_of_two(two_worker_run, shards, tmp_path):
    result = train(shards, "compact", str(tmp_path / "model.hdl"), Schedule(**SCHEDULE), workers=1, params=PARAMS)
    assert all(h["workers"] == 1 for h in result["history"])
    best_one, best_two = (min(h["validation_error"] for h in r["history"]) for r in (result, two_worker_run[0]))
    assert abs(best_one - best_two) <= 0.05


def _registered(run_dir: str, checkpoint: str) -> bool:
    """Whether Ray Train's controller has taken in the checkpoint: a run resumes from the ones its
    snapshot lists (one uploaded but not yet listed when the driver dies is done again)."""
    snapshot = f"{run_dir}/checkpoint_manager_snapshot.json"
    return storage.exists(snapshot) and checkpoint in storage.read_bytes(snapshot).decode()


def test_checkpoints_and_model_on_s3_and_a_stopped_driver_resumes(ray_local, shards, s3_bucket, tmp_path):
    out, storage_uri = f"{s3_bucket}/models/model.hdl", f"{s3_bucket}/runs"
    command = [sys.executable, "-m", "dlcls.cli", "train", shards, "--out", out, "--storage", storage_uri,
               "--run-name", "nightly", "--epochs", "3", "--batch-size", "16", "--learning-rate", "0.01",
               "--seed", "11", "--augment", "brightness_variation", "10",
               "--address", ray_local.get_runtime_context().gcs_address]
    # A second driver on the test's Ray: when it dies, Ray ends its job (trainer, workers) with it.
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while not _registered(f"{storage_uri}/nightly", "epoch-0001") and time.monotonic() < deadline:
        assert driver.poll() is None, "the training driver ended early"
        time.sleep(1)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver dies mid-run; the cluster stays
    driver.wait()
    time.sleep(5)  # Ray notices the dead driver and ends its job
    first = json.loads(storage.read_bytes(f"{storage_uri}/nightly/epoch-0001/state.json"))["history"][0]
    lines = []
    result = train(shards, "compact", out, Schedule(**SCHEDULE), workers=2, params=PARAMS, run_name="nightly",
                   storage_uri=storage_uri, progress=lines.append)
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    assert result["attempts"][0] == 0 and result["attempts"][-1] >= 1  # resumed, not started over
    assert result["history"][0] == first  # epoch 1 as the killed run measured it, not measured again
    # a line for each epoch this driver trained, re-written checkpoint directories included
    assert [line["epoch"] for line in lines] == list(range(result["attempts"][-1] + 1, 4))
    for name in ("model", "best", "metrics", "plot"):
        assert storage.exists(result["outputs"][name]), name
    assert dlcls.get_dl_classifier_param(dlcls.read_dl_classifier(out), "classes") == ["bottom", "left", "right"]


def test_the_command_with_relative_paths_prints_each_epoch_and_writes_every_output(shards, tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.chdir(tmp_path)  # Ray Train runs its workers in other directories: paths must not move
    code = main(["train", shards, "--out", "models/parts.hdl", "--epochs", "2", "--batch-size", "16",
                 "--learning-rate", "0.01", "--seed", "11", "--workers", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert re.findall(r"^epoch +(\d+): loss \d", captured.err, re.M) == ["1", "2"]
    assert re.search(r"best validation error [\d.]+% at epoch \d", captured.out)
    for name in ("parts.hdl", "parts_best.hdl", "parts_metrics.parquet", "parts_training_progress.png"):
        assert (tmp_path / "models" / name).stat().st_size > 0
        assert str(tmp_path / "models" / name) in captured.out
    assert (tmp_path / "models" / "runs" / "parts" / "best.hdl").exists()


@pytest.mark.parametrize("change, match", [
    (dict(params={"batch_size": 400}), "worker 0 of 2 gets .* training images, fewer than its share"),
    (dict(params={"batch_size": 1}), "cannot be shared by 2 workers"),
    (dict(workers=0), "--workers must be"),
    (dict(schedule=Schedule(epochs=0)), "--epochs must be"),
    (dict(schedule=Schedule(epochs=1, step_factor=0)), "--step-factor must be"),
    (dict(schedule=Schedule(epochs=1, strategy="linear")), "'step' or 'cosine'"),
    (dict(schedule=Schedule(epochs=1, augmentation={"wobble": 3})), "wobble"),
])
def test_settings_no_worker_could_train_with_are_refused_before_any_starts(shards, tmp_path, change, match):
    arguments = dict(schedule=Schedule(epochs=1), workers=2, params={"batch_size": 16}) | change
    with pytest.raises(dlcls.errors.HalconError, match=match):
        train(shards, "compact", str(tmp_path / "model.hdl"), arguments.pop("schedule"), **arguments)
    assert not (tmp_path / "runs").exists()


def test_data_without_a_validation_split_is_refused_and_new_flags_preprocess_again(ray_local, tmp_path):
    root = tmp_path / "images"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8, 3), 50 * i, np.uint8)).save(root / label / f"{i}.png")
    options = dict(workers=1, params={"batch_size": 2}, image_dimensions=[16, 16, 3])
    with pytest.raises(dlcls.errors.WrongParamValueError, match="no validation images"):
        train(str(root), "compact", str(tmp_path / "model.hdl"), Schedule(epochs=1), validation_percent=0, **options)
    # the same run with a validation split: preprocessed again, as the run has no checkpoint yet
    result = train(str(root), "compact", str(tmp_path / "model.hdl"), Schedule(epochs=1), train_percent=50,
                   validation_percent=50, **options)
    manifest = json.loads(Path(result["run"], "shards", "manifest.json").read_text())
    assert sum(manifest["counts"]["validation"].values()) == 6 and len(result["history"]) == 1
    with pytest.raises(dlcls.errors.WrongParamValueError, match="other settings .*validation_percent"):
        train(str(root), "compact", str(tmp_path / "model.hdl"), Schedule(epochs=2), validation_percent=30, **options)


def test_a_run_out_of_retries_fails_with_one_line_naming_the_cause_and_the_checkpoints(shards, tmp_path):
    schedule = Schedule(epochs=2, fail_once_at_epoch=1, fail_marker=str(tmp_path / "killed"))
    with pytest.raises(dlcls.errors.RunFailedError, match=r"after 0 retries: \w+.*checkpoints are in .*runs/m") as e:
        train(shards, "compact", str(tmp_path / "m.hdl"), schedule, workers=2, params=PARAMS, max_failures=0)
    assert "\n" not in str(e.value)


def test_the_model_files_classes_and_their_order_apply(shards, tmp_path):
    handle = dlcls.read_dl_classifier("compact")
    dlcls.set_dl_classifier_param(handle, "image_dimensions", [32, 32, 3])
    dlcls.set_dl_classifier_param(handle, "classes", ["right", "left", "bottom"])  # not the data's sorted order
    dlcls.write_dl_classifier(handle, str(tmp_path / "start.hdl"))
    result = train(shards, str(tmp_path / "start.hdl"), str(tmp_path / "model.hdl"), Schedule(**SCHEDULE), workers=1,
                   params=PARAMS)
    trained = dlcls.read_dl_classifier(result["outputs"]["model"])
    assert dlcls.get_dl_classifier_param(trained, "classes") == ["right", "left", "bottom"]
    assert min(h["validation_error"] for h in result["history"]) <= 0.05  # labels mapped to the model's order
    dlcls.set_dl_classifier_param(handle, "classes", ["right", "left"])
    dlcls.write_dl_classifier(handle, str(tmp_path / "two.hdl"))
    with pytest.raises(dlcls.errors.InvalidLabelsError, match=r"\['bottom'\].*--classes"):
        train(shards, str(tmp_path / "two.hdl"), str(tmp_path / "m2.hdl"), Schedule(epochs=1), workers=1,
              params=PARAMS)


MULTI_NODE = """
import json, sys
import ray
from ray.cluster_utils import Cluster
from dlcls.ray.train import train
from dlcls.ray.train_loop import Schedule
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.add_node(num_cpus=1)
ray.init(address=cluster.address, log_to_driver=False)
result = train(sys.argv[1], "compact", sys.argv[2], Schedule(epochs=1, seed=3), workers=2, cpus_per_worker=1,
               params={"batch_size": 16}, image_dimensions=[32, 32, 3])
print("RESULT", json.dumps(result["history"][-1]), flush=True)
ray.shutdown()
cluster.shutdown()
"""


def test_training_across_two_ray_nodes_from_an_image_folder(shards, tmp_path):
    images = str(Path(shards).parent / "images")  # not preprocessed: train runs the pipeline first
    out = subprocess.run([sys.executable, "-c", MULTI_NODE, images, str(tmp_path / "model.hdl")], capture_output=True,
                         text=True, timeout=300, env=_without_ray_address())
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert record["workers"] == 2 and record["nodes"] == 2
    assert (tmp_path / "runs" / "model" / "shards" / "manifest.json").exists()
