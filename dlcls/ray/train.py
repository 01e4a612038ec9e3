"""`dlcls train`: the driver side of data-parallel training (the workers run train_loop).

DATA is the output of `dlcls preprocess` (its manifest.json) or an image folder/URL, which is
first preprocessed by the same Ray Data pipeline into the run's storage. Outputs next to
MODEL_URI (model.hdl -> model_best.hdl, model_metrics.parquet, model_training_progress.png).
"""

import contextlib
import json
import os
import re
import threading
from dataclasses import asdict

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch

from .. import errors
from ..classifier import DLClassifier
from ..core import storage, tables
from ..procedures.plots import plot_dl_classifier_training_progress
from .data import preprocess, shard_files
from .session import require_ray
from .sharding import select_rows, shares, worker_of
from .train_loop import Schedule, train_loop

# Command-line overrides of the model file's parameters.
PARAM_OVERRIDES = ("classes", "batch_size", "batch_size_multiplier", "learning_rate", "momentum", "weight_prior")
# Ray Train's record of a run's registered checkpoints, in the run's storage.
CHECKPOINT_SNAPSHOT = "checkpoint_manager_snapshot.json"
METRICS = ("epoch", "loss", "training_error", "validation_error", "learning_rate", "images_per_second")


def output_names(model_uri: str) -> dict[str, str]:
    stem = model_uri[:-4] if model_uri.endswith(".hdl") else model_uri
    return {"model": model_uri, "best": f"{stem}_best.hdl", "metrics": f"{stem}_metrics.parquet",
            "plot": f"{stem}_training_progress.png"}


def train(data: str, model: str, out: str, schedule: Schedule, *, workers: int = 2, use_gpu: bool = False,
          run_name: str | None = None, storage_uri: str | None = None, params: dict | None = None,
          max_failures: int = 3, cpus_per_worker: float | None = None, progress=None, **preprocess_options) -> dict:
    """Train on the running Ray; returns {'outputs', 'history', 'best', 'run', 'attempts'}:
    'attempts' lists the epoch each attempt of the run started from ([0] for an uninterrupted run;
    [0, 2] when a worker died after epoch 2's checkpoint or the run was resumed there).
    `preprocess_options` go to data.preprocess when DATA is an image folder."""
    ray = require_ray()
    if not isinstance(workers, int) or workers < 1:
        raise errors.WrongParamValueError(f"--workers must be an integer >= 1, got {workers!r}")
    names = output_names(storage.absolute(str(out)))
    run_name = run_name or os.path.basename(names["model"]).removesuffix(".hdl")
    storage_uri = storage.absolute(str(storage_uri or f"{os.path.dirname(names['model'])}/runs").rstrip("/"))
    run_dir = f"{storage_uri}/{run_name}"
    handle, params = DLClassifier.read(model), params or {}
    width, height, channels = preprocess_options.get("image_dimensions") or handle.geometry
    schedule.check({"width": width, "height": height, "channels": channels})
    _check_step(handle, params, workers)
    shards = _shards(storage.absolute(str(data)), run_dir, model, handle, preprocess_options)
    manifest = json.loads(storage.read_bytes(f"{shards}/manifest.json"))
    handle = _handle(handle, manifest, params, schedule.seed)
    _check_shares(handle, manifest, shards, workers)
    trainer = _trainer(ray, handle, manifest, shards, schedule, f"{run_dir}/best.hdl", workers, use_gpu, run_name,
                       storage_uri, max_failures, cpus_per_worker)
    with _watching(run_dir, progress):
        try:
            result = trainer.fit()
        except ray.train.TrainingFailedError as e:
            raise errors.RunFailedError(
                f"training failed after {max_failures} retries: {_cause(e)}; the run's checkpoints are in {run_dir} "
                "(the same command resumes from the last one once the cause is fixed)") from e
    state = _final(result.checkpoint, names, run_dir)
    _write_outputs(state["history"], names)
    return {"outputs": names, "history": state["history"], "best": state["best"], "run": run_dir,
            "attempts": state.get("attempts", [])}


def _cause(error) -> str:
    """The first worker's or the controller's error behind Ray Train's failure, in one line."""
    causes = list(getattr(error, "worker_failures", {}).values()) or [getattr(error, "controller_failure", None)]
    cause = causes[0] if causes[0] is not None else error
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"


def _shards(data: str, run_dir: str, model: str, handle: DLClassifier, options: dict) -> str:
    """DATA if it holds preprocessed shards, else the shards preprocessed from it into the run's
    storage: once, as a resumed run finds them there; again when the options changed before the
    run's first checkpoint (after it, the run must keep its data)."""
    data, target = data.rstrip("/"), f"{run_dir}/shards"
    if storage.exists(f"{data}/manifest.json"):
        return data
    if storage.exists(f"{target}/manifest.json"):
        changed = _changed(json.loads(storage.read_bytes(f"{target}/manifest.json")), handle, options)
        if not changed:
            return target
        if storage.exists(f"{run_dir}/{CHECKPOINT_SNAPSHOT}"):
            raise errors.WrongParamValueError(
                f"run {run_dir} was preprocessed with other settings ({', '.join(changed)}); resume it with the same "
                "flags, or use a new --run-name")
    preprocess(data, target, model, **options)
    return target


def _changed(manifest: dict, handle: DLClassifier, options: dict) -> list[str]:
    """The preprocessing options (given, not None) that differ from those the shards were made with."""
    made = {**manifest["settings"], **manifest["image"]}
    made["image_dimensions"] = [made["width"], made["height"], made["channels"]]
    wanted = {**{k: v for k, v in options.items() if v is not None and k != "max_error_ratio"},
              "image_dimensions": list(options.get("image_dimensions") or handle.geometry)}
    return sorted(k for k, v in wanted.items() if k in made and made[k] != v)


def _check_step(handle: DLClassifier, params: dict, workers: int) -> None:
    step = (params.get("batch_size") or handle.get_param("batch_size")) * \
        (params.get("batch_size_multiplier") or handle.get_param("batch_size_multiplier"))
    if step < workers:
        raise errors.BatchSizeError(
            f"batch_size * batch_size_multiplier = {step} images per step cannot be shared by {workers} workers "
            "(each needs at least one): lower --workers or raise --batch-size")


def _handle(handle: DLClassifier, manifest: dict, params: dict, seed: int) -> DLClassifier:
    """The network to start from, set to its classes (the override's, else the model file's, else
    the data's), the data's geometry and the given parameters. A new output layer is drawn from
    `seed`: the same seed gives the same model."""
    classes = params.get("classes") or handle.get_param("classes") or manifest["classes"]
    unknown = sorted(set(manifest["classes"]) - set(classes))
    if unknown:
        raise errors.InvalidLabelsError(
            f"the data has classes {unknown} that the model's classes {classes} lack; pass --classes with every "
            "class to train a new output layer")
    image = manifest["image"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if handle.get_param("classes") != classes:
            handle.set_param("classes", classes)
        handle.set_param("image_dimensions", [image["width"], image["height"], image["channels"]])
    handle.set_param("runtime", "cpu")  # each worker moves the network to its own device
    for name, value in params.items():
        if value is not None and name != "classes":
            handle.set_param(name, value)
    return handle


def _check_shares(handle: DLClassifier, manifest: dict, shards: str, workers: int) -> None:
    """Refuse, before any worker starts, a run in which some worker could not fill its share of
    one optimizer step or there is nothing to validate on."""
    step = handle.get_param("batch_size") * handle.get_param("batch_size_multiplier")
    if not sum(manifest["counts"]["validation"].values()):
        raise errors.WrongParamValueError(
            f"{shards} has no validation images: preprocess with --validation-percent > 0")
    rows = _columns(manifest, shards, ["relative_path", "split"])
    have = [0] * workers
    for path, split in zip(rows.column("relative_path").to_pylist(), rows.column("split").to_pylist()):
        if split == "train":
            have[worker_of(path, workers)] += 1
    short = [(rank, n, share) for rank, (n, share) in enumerate(zip(have, shares(step, workers))) if n < share]
    if short:
        rank, n, share = short[0]
        raise errors.BatchSizeError(
            f"worker {rank} of {workers} gets {n} training images, fewer than its share ({share}) of one step of "
            f"{step} images: lower --batch-size or --workers, or train on more images")


def _columns(manifest: dict, shards: str, columns: list[str]) -> pa.Table:
    files, filesystem = _shard_paths(shards, manifest)
    return pq.read_table(files, columns=columns, filesystem=filesystem)


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
                           "schedule": asdict(schedule), "best_model": best_uri, "classes": manifest["classes"]},
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
    return (os.path.abspath(path), None) if storage.is_local(fs) else (path, _arrow_filesystem(fs))


def _datasets(ray, manifest: dict, shards: str, workers: int) -> dict:
    """One dataset per worker: the training and validation rows whose path hashes to it."""
    files, filesystem = _shard_paths(shards, manifest)
    source = ray.data.read_parquet(files, filesystem=filesystem)
    return {f"rows_{rank}": source.map_batches(select_rows, fn_kwargs={"rank": rank, "workers": workers},
                                               batch_format="pyarrow")
            for rank in range(workers)}


def _shard_paths(shards: str, manifest: dict) -> tuple[list[str], pafs.FileSystem | None]:
    """The shard files as pyarrow reads them: paths within their file system, and that system."""
    fs, _ = storage.filesystem(shards)
    return [storage.filesystem(f)[1] for f in shard_files(shards, manifest)], _arrow_filesystem(fs)


def _arrow_filesystem(fs):
    return None if storage.is_local(fs) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))


@contextlib.contextmanager
def _watching(run_dir: str, progress, interval: float = 1.0):
    """Calls `progress(record)` for each epoch checkpointed while the block runs. Ray Train's
    callbacks run in its controller, away from this terminal, so the driver watches the run's
    storage instead. A checkpoint is known by its name and its state file's version: a resumed
    run writes again the epochs a killed one had uploaded without registering them."""
    if progress is None:
        yield
        return
    fs, path = storage.filesystem(run_dir)
    seen = set(_checkpointed(fs, path))

    def scan():
        for key in sorted(set(_checkpointed(fs, path)) - seen):
            try:
                state = json.loads(fs.cat_file(f"{path}/{key[0]}/state.json"))
            except (OSError, ValueError):  # removed meanwhile (two are kept) or still being written
                continue
            seen.add(key)
            progress(state["history"][-1])

    stop = threading.Event()

    def watch():
        while not stop.wait(interval):
            scan()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    scan()  # the epochs checkpointed since the last look


def _checkpointed(fs, path: str) -> list[tuple[str, str]]:
    """(epoch-NNNN, version of its state.json) of the run's checkpoints; names taken literally."""
    found = []
    try:
        names = [n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return found
    for name in sorted(n for n in names if re.fullmatch(r"epoch-\d+", n)):
        try:
            info = fs.info(f"{path}/{name}/state.json")
        except FileNotFoundError:
            continue
        found.append((name, str(info.get("ETag") or info.get("mtime") or info.get("LastModified") or info["size"])))
    return found


def _final(checkpoint, names: dict, run_dir: str) -> dict:
    """The last checkpoint's model and the run's best model to their places; the run's state."""
    with checkpoint.as_directory() as directory:
        with open(os.path.join(directory, "model.hdl"), "rb") as f:
            storage.write_bytes_atomic(names["model"], f.read())
        with open(os.path.join(directory, "state.json")) as f:
            state = json.load(f)
    storage.write_bytes_atomic(names["best"], storage.read_bytes(f"{run_dir}/best.hdl"))
    return state


def _write_outputs(history: list[dict], names: dict) -> None:
    table = pa.table({m: [row[m] for row in history] for m in METRICS})
    tables.write_parquet(table, names["metrics"])
    plot_dl_classifier_training_progress(table.column("training_error").to_pylist(),
                                         table.column("validation_error").to_pylist(),
                                         table.column("learning_rate").to_pylist(), table.column("epoch").to_pylist(),
                                         output=names["plot"])
