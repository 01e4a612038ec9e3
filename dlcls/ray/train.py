"""`dlcls train`: the driver side of data-parallel training (the workers run train_loop).

DATA is the output of `dlcls preprocess` (its manifest.json) or an image folder/URL, which is
first preprocessed by the same Ray Data pipeline into the run's storage. Outputs next to
MODEL_URI (model.hdl -> model_best.hdl, model_metrics.parquet, model_training_progress.png).
"""

import contextlib
import json
import os
import threading
from dataclasses import asdict

import pyarrow as pa
import pyarrow.fs as pafs
import torch

from ..classifier import DLClassifier
from ..core import storage, tables
from ..procedures.plots import plot_dl_classifier_training_progress
from .data import preprocess
from .session import require_ray
from .train_loop import Schedule, train_loop, worker_of

# Command-line overrides of the model file's parameters.
PARAM_OVERRIDES = ("batch_size", "batch_size_multiplier", "learning_rate", "momentum", "weight_prior")
METRICS = ("epoch", "loss", "training_error", "validation_error", "learning_rate", "images_per_second")


def output_names(model_uri: str) -> dict[str, str]:
    stem = model_uri[:-4] if model_uri.endswith(".hdl") else model_uri
    return {"model": model_uri, "best": f"{stem}_best.hdl", "metrics": f"{stem}_metrics.parquet",
            "plot": f"{stem}_training_progress.png"}


def train(data: str, model: str, out: str, schedule: Schedule, *, workers: int = 2, use_gpu: bool = False,
          run_name: str | None = None, storage_uri: str | None = None, params: dict | None = None,
          max_failures: int = 3, cpus_per_worker: float | None = None, progress=None, **preprocess_options) -> dict:
    """Train on the running Ray; returns {'outputs', 'history', 'run', 'resumed_from'}."""
    ray = require_ray()
    names = output_names(str(out))
    run_name = run_name or os.path.basename(names["model"]).removesuffix(".hdl")
    storage_uri = str(storage_uri or f"{os.path.dirname(names['model']) or '.'}/runs").rstrip("/")
    shards = _shards(data, f"{storage_uri}/{run_name}/shards", model, preprocess_options)
    manifest = json.loads(storage.read_bytes(f"{shards}/manifest.json"))
    handle = _handle(model, manifest, params or {}, schedule.seed)
    trainer = _trainer(ray, handle, manifest, shards, schedule, names["best"], workers, use_gpu, run_name,
                       storage_uri, max_failures, cpus_per_worker)
    with _watching(f"{storage_uri}/{run_name}", progress):
        result = trainer.fit()
    state = _final(result.checkpoint, names["model"])
    _write_outputs(state["history"], names)
    return {"outputs": names, "history": state["history"], "best": state["best"], "run": f"{storage_uri}/{run_name}"}


def _shards(data: str, target: str, model: str, options: dict) -> str:
    """DATA if it holds preprocessed shards, else the shards preprocessed from it into `target`."""
    data = str(data).rstrip("/")
    if storage.exists(f"{data}/manifest.json"):
        return data
    if not storage.exists(f"{target}/manifest.json"):  # a resumed run preprocessed it already
        preprocess(data, target, model, **options)
    return target


def _handle(model: str, manifest: dict, params: dict, seed: int) -> DLClassifier:
    """The network to start from, set to the data's classes and geometry and the given parameters.
    A new output layer is drawn from `seed`: the same seed gives the same model."""
    handle = DLClassifier.read(model)
    image = manifest["image"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if handle.get_param("classes") != manifest["classes"]:
            handle.set_param("classes", manifest["classes"])
        handle.set_param("image_dimensions", [image["width"], image["height"], image["channels"]])
    handle.set_param("runtime", "cpu")  # each worker moves the network to its own device
    for name, value in params.items():
        if value is not None:
            handle.set_param(name, value)
    return handle


def _trainer(ray, handle, manifest, shards, schedule, best_uri, workers, use_gpu, run_name, storage_uri,
             max_failures, cpus_per_worker):
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cpus = cpus_per_worker or _cpus_per_worker(ray, workers, use_gpu)
    schedule = Schedule(**{**asdict(schedule), "threads": max(1, int(cpus))})
    storage_path, filesystem = _train_storage(storage_uri)
    return TorchTrainer(
        train_loop,
        train_loop_config={"model": {"bytes": handle.to_bytes()}, "geometry": manifest["image"],
                           "schedule": asdict(schedule), "best_model": best_uri},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(name=run_name, storage_path=storage_path, storage_filesystem=filesystem,
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
        datasets=_datasets(ray, manifest, shards, workers), dataset_config=DataConfig(datasets_to_split=[]))


def _cpus_per_worker(ray, workers: int, use_gpu: bool) -> float:
    """Leave one CPU of the cluster to Ray Data, which feeds the workers: with every CPU held by
    a worker its read tasks would never be scheduled."""
    total = ray.cluster_resources().get("CPU", 1)
    return max(0.25, min(float((total - 1) // workers) or (total - 1) / workers, 8.0)) if not use_gpu else 1.0


def _train_storage(storage_uri: str):
    """Ray Train's storage: a local path as it is; other URLs through our fsspec file system (the
    same endpoint and credentials as every other read and write), with the scheme stripped."""
    fs, path = storage.filesystem(storage_uri)
    if storage.is_local(fs):
        return os.path.abspath(path), None
    return path, pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def _datasets(ray, manifest: dict, shards: str, workers: int) -> dict:
    fs, path = storage.filesystem(shards)
    files = [f"{path}/shards/{name}" for name in manifest["shards"]]
    filesystem = None if storage.is_local(fs) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    source = ray.data.read_parquet(files, filesystem=filesystem)
    return {f"{split}_{rank}": source.map_batches(_select, fn_kwargs={"split": split, "rank": rank, "workers": workers},
                                                  batch_format="pyarrow")
            for split in ("train", "validation") for rank in range(workers)}


def _select(batch: pa.Table, split: str, rank: int, workers: int) -> pa.Table:
    keep = [s == split and worker_of(p, workers) == rank for s, p in
            zip(batch.column("split").to_pylist(), batch.column("relative_path").to_pylist())]
    return batch.filter(pa.array(keep, pa.bool_()))


@contextlib.contextmanager
def _watching(run_dir: str, progress, interval: float = 1.0):
    """Calls `progress(record)` for each epoch checkpointed while the block runs. Ray Train's
    callbacks run in its controller, away from this terminal, so the driver watches the run's
    storage instead."""
    if progress is None:
        yield
        return
    stop, seen = threading.Event(), set(_checkpointed(run_dir))

    def watch():
        while not stop.wait(interval):
            for name in sorted(set(_checkpointed(run_dir)) - seen):
                seen.add(name)
                try:
                    state = json.loads(storage.read_bytes(f"{run_dir}/{name}/state.json"))
                except OSError:  # an old checkpoint removed meanwhile (only the last two are kept)
                    continue
                progress(state["history"][-1])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _checkpointed(run_dir: str) -> list[str]:
    fs, path = storage.filesystem(run_dir)
    return [p.rsplit("/", 2)[1] for p in fs.glob(f"{path}/epoch-*/state.json")]


def _final(checkpoint, model_uri: str) -> dict:
    with checkpoint.as_directory() as directory:
        with open(os.path.join(directory, "model.hdl"), "rb") as f:
            storage.write_bytes_atomic(model_uri, f.read())
        with open(os.path.join(directory, "state.json")) as f:
            return json.load(f)


def _write_outputs(history: list[dict], names: dict) -> None:
    table = pa.table({m: [row[m] for row in history] for m in METRICS})
    tables.write_parquet(table, names["metrics"])
    plot_dl_classifier_training_progress(table.column("training_error").to_pylist(),
                                         table.column("validation_error").to_pylist(),
                                         table.column("learning_rate").to_pylist(), table.column("epoch").to_pylist(),
                                         output=names["plot"])
