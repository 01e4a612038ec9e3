"""Data-parallel training with Ray Train: N workers, each running the train step of
train_dl_classifier_batch under DDP, checkpointing every epoch to the storage path.

Batches mean the same on any cluster size: an optimizer step sees batch_size *
batch_size_multiplier images in total. Worker r takes a share of b // N images, one more for the
first b % N workers when N does not divide b, and weighs its loss by share * N / b, so that DDP's
gradient average is the mean over the b images, as on one machine.

Data: Ray Data reads the shards of `dlcls preprocess`; worker r is fed the training and
validation rows whose path hashes to r (a fixed assignment, so the same seed gives the same model
for the same N), with label indices mapped to the model's classes, and keeps them in memory as
network bytes. Each worker scans every shard and keeps its part, so the shards are read N times
per attempt: cheap next to the epochs of training on them, and what makes the assignment exact.
Each epoch a worker shuffles its rows with a generator seeded by (seed, epoch, rank), and all
workers take the same number of steps (the smallest count of full shares; the driver has checked
that every worker fills at least one). Validation and training errors are counted on every
worker and summed across them; a digest of every validation prediction goes into the history.

Checkpoints: rank 0 reports, every epoch, a directory with `model.hdl` (a dlcls model file with
the SGD momentum) and `state.json` (epoch, history, best epoch, the epoch each attempt started
from), and writes the best model so far to the run's storage. A worker that dies is replaced and
the run resumes from the last checkpoint; running the command again with the same run name
resumes the run from its storage path.
"""

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from ray.train import Checkpoint

from .. import errors
from ..classifier import DLClassifier
from ..core.predict import predict
from ..core.preprocess import to_network_range
from ..core.split import hash_draw
from ..core.train_step import set_hyperparameters, train_step
from ..procedures.augment import augment_images
from ..procedures.training import learning_rate_at
from .data import images_of
from .sharding import shares


@dataclass
class Schedule:
    """What the training loop needs besides the model: HALCON's reference loop settings."""

    epochs: int
    seed: int = 42
    strategy: str = "step"
    step_epochs: int = 0
    step_factor: float = 0.5
    training_error_percent: float = 20
    augmentation: dict = field(default_factory=dict)
    threads: int = 1
    fail_once_at_epoch: int | None = None  # tests: a worker kills itself once, after this epoch's checkpoint
    fail_marker: str | None = None

    def check(self, geometry: dict) -> None:
        """Refuse bad settings on the driver, before any worker starts (a worker would fail on them
        after Ray Train's retries)."""
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise errors.WrongParamValueError(f"--epochs must be an integer >= 1, got {self.epochs!r}")
        if not self.step_factor > 0:
            raise errors.WrongParamValueError(f"--step-factor must be > 0, got {self.step_factor!r}")
        if not 0 < self.training_error_percent <= 100:
            raise errors.WrongParamValueError(
                f"--training-error-percent must be in (0, 100], got {self.training_error_percent!r}")
        learning_rate_at(0, 1.0, self.epochs, self.strategy, self.step_epochs, self.step_factor)
        if self.augmentation:  # the names and values, checked by the function the workers call
            image = np.zeros((1, geometry["height"], geometry["width"], geometry["channels"]), np.float32)
            augment_images(image, list(self.augmentation), list(self.augmentation.values()), seed=0)


def train_loop(config: dict) -> None:
    """The function every Ray Train worker runs."""
    context = ray.train.get_context()
    rank, workers = context.get_world_rank(), context.get_world_size()
    schedule = Schedule(**config["schedule"])
    torch.set_num_threads(schedule.threads)
    handle, state = _start(config["model"])
    state.setdefault("attempts", []).append(state["epoch"])
    # Buffers are shared once per epoch (_share_buffers), not at every forward; gradients are
    # reduced in place in their buckets, without a copy.
    model = ray.train.torch.prepare_model(
        handle.network, parallel_strategy_kwargs={"broadcast_buffers": False, "gradient_as_bucket_view": True})
    optimizer = handle.optimizer()
    device = ray.train.torch.get_device()
    # The shards' label indices -> the classes of the network being trained (a resumed run's are
    # its checkpoint's).
    label_map = [handle.get_param("classes").index(c) for c in config["classes"]]
    train, validation = _rows(ray.train.get_dataset_shard(f"rows_{rank}"), config["geometry"], label_map)
    share = shares(handle.get_param("batch_size") * handle.get_param("batch_size_multiplier"), workers)
    steps = _all_reduce(torch.tensor([len(train["labels"]) // share[rank]]), dist.ReduceOp.MIN).item()
    subset = _subset(train, schedule)
    nodes = [None] * workers
    dist.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    for epoch in range(state["epoch"], schedule.epochs):
        rate = learning_rate_at(epoch, state["initial_rate"], schedule.epochs, schedule.strategy,
                                schedule.step_epochs, schedule.step_factor)
        set_hyperparameters(optimizer, rate, handle.get_param("momentum"), handle.get_param("weight_prior"))
        start = time.perf_counter()
        loss = _epoch(model, optimizer, train, share, rank, steps, epoch, schedule, handle, device)
        seconds = time.perf_counter() - start
        _share_buffers(handle.network)
        (training_error, _), (validation_error, predicted) = _errors(handle, [subset, validation], device)
        record = {"epoch": epoch + 1, "loss": loss, "training_error": training_error,
                  "validation_error": validation_error, "learning_rate": rate,
                  "images_per_second": steps * sum(share) / seconds, "workers": workers, "nodes": len(set(nodes)),
                  "validation_predictions": _digest(validation["paths"], predicted, rank, workers)}
        _report(handle, state, record, rank, config["best_model"], schedule)


def _start(model: dict) -> tuple[DLClassifier, dict]:
    """The handle and training state: from the last checkpoint when the run resumes, else new."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        handle = DLClassifier.from_bytes(model["bytes"])
        return handle, {"epoch": 0, "history": [], "best": None, "initial_rate": handle.get_param("learning_rate")}
    with checkpoint.as_directory() as directory:
        with open(os.path.join(directory, "model.hdl"), "rb") as f:
            handle = DLClassifier.from_bytes(f.read())
        with open(os.path.join(directory, "state.json")) as f:
            return handle, json.load(f)


def _rows(shard, geometry: dict, label_map: list[int]) -> tuple[dict, dict]:
    """This worker's training and validation rows as arrays, each in a fixed order (by path), with
    the shards' label indices mapped to the model's classes."""
    batches = list(shard.iter_batches(batch_size=1024, batch_format="pyarrow"))
    paths = np.array([p for b in batches for p in b.column("relative_path").to_pylist()], dtype=object)
    splits = np.array([s for b in batches for s in b.column("split").to_pylist()], dtype=object)
    images = np.concatenate([images_of(b.column("image"), geometry) for b in batches]) if batches else \
        np.empty((0, geometry["height"], geometry["width"], geometry["channels"]), np.uint8)
    labels = np.concatenate([b.column("label_index").to_numpy() for b in batches]) if batches else np.empty(0, int)
    labels = np.asarray(label_map, np.int64)[labels]
    sets = []
    for split in ("train", "validation"):
        chosen = np.flatnonzero(splits == split)
        chosen = chosen[np.argsort(paths[chosen], kind="stable")]
        sets.append({"paths": paths[chosen].tolist(), "images": images[chosen], "labels": labels[chosen]})
    return sets[0], sets[1]


def _subset(rows: dict, schedule: Schedule) -> dict:
    """The training images whose training error is measured: a fixed share, drawn by path."""
    keep = np.array([hash_draw(schedule.seed + 1, p) % 10_000 < 100 * schedule.training_error_percent
                     for p in rows["paths"]], dtype=bool)
    return {"paths": [p for p, k in zip(rows["paths"], keep) if k], "images": rows["images"][keep],
            "labels": rows["labels"][keep]}


def _epoch(model, optimizer, rows: dict, share: list[int], rank: int, steps: int, epoch: int,
           schedule: Schedule, handle: DLClassifier, device) -> float:
    rng = np.random.default_rng([schedule.seed, epoch, rank])
    torch.manual_seed(int(rng.integers(2**62)))  # dropout: the same for the same seed, epoch and rank
    order = rng.permutation(len(rows["labels"]))
    lo, hi = handle.get_param("image_range_min"), handle.get_param("image_range_max")
    total, weight = 0.0, share[rank] * len(share) / sum(share)
    for k in range(steps):
        chosen = order[k * share[rank]:(k + 1) * share[rank]]
        images = to_network_range(rows["images"][chosen], lo, hi)
        if schedule.augmentation:
            images = augment_images(images, list(schedule.augmentation), list(schedule.augmentation.values()),
                                    seed=rng, range_min=lo, range_max=hi)
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)
        y = torch.from_numpy(rows["labels"][chosen]).to(device)
        total += train_step(model, optimizer, x, y, handle.get_param("batch_size"), scale=weight) * share[rank]
    return _all_reduce(torch.tensor([total], dtype=torch.float64), dist.ReduceOp.SUM).item() / max(
        steps * sum(share), 1)


def _errors(handle: DLClassifier, sets: list[dict], device) -> list[tuple[float, np.ndarray]]:
    """Top-1 error of each set, counted on every worker and summed across them, and this
    worker's predicted class indices."""
    counts, predictions = [], []
    lo, hi = handle.get_param("image_range_min"), handle.get_param("image_range_max")
    batch = handle.get_param("batch_size")
    for rows in sets:
        predicted = [np.empty(0, np.int64)]
        for start in range(0, len(rows["labels"]), batch):
            images = to_network_range(rows["images"][start:start + batch], lo, hi)
            x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
            predicted.append(predict(handle.network, x, device).argmax(1))
        predictions.append(np.concatenate(predicted))
        counts += [int((predictions[-1] != rows["labels"]).sum()), len(rows["labels"])]
    summed = _all_reduce(torch.tensor(counts, dtype=torch.float64), dist.ReduceOp.SUM).tolist()
    return [(summed[i] / summed[i + 1] if summed[i + 1] else float("nan"), p)
            for i, p in zip(range(0, len(summed), 2), predictions)]


def _digest(paths: list[str], predicted: np.ndarray, rank: int, workers: int) -> str | None:
    """On rank 0 (which checkpoints), the sha256 of every validation image's (path, predicted class
    index), gathered from all workers: a model file read back elsewhere must give exactly these
    predictions."""
    gathered = [None] * workers if rank == 0 else None
    dist.gather_object(list(zip(paths, predicted.tolist())), gathered, dst=0)
    if rank != 0:
        return None
    pairs = sorted(pair for part in gathered for pair in part)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def _share_buffers(network: torch.nn.Module) -> None:
    """Rank 0's batch-norm statistics to every worker: each worker updated its own from its own
    images; evaluating and checkpointing the same network needs one set."""
    for buffer in network.buffers():
        dist.broadcast(buffer, src=0)


def _all_reduce(tensor: torch.Tensor, op) -> torch.Tensor:
    on_device = tensor.to(ray.train.torch.get_device())  # nccl reduces GPU tensors only
    dist.all_reduce(on_device, op=op)
    return on_device.cpu()


def _report(handle: DLClassifier, state: dict, record: dict, rank: int, best_model: str, schedule: Schedule):
    """Every rank reports (a barrier); rank 0 attaches the checkpoint and keeps the best model."""
    state["history"].append(record)
    state["epoch"] = record["epoch"]
    if state["best"] is None or record["validation_error"] <= state["best"]["validation_error"]:
        state["best"] = {"epoch": record["epoch"], "validation_error": record["validation_error"]}
        if rank == 0:
            handle.write(best_model, include_optimizer=False)
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            handle.write(os.path.join(directory, "model.hdl"))
            with open(os.path.join(directory, "state.json"), "w") as f:
                json.dump(state, f)
            checkpoint = Checkpoint.from_directory(directory)
        ray.train.report({**record, "best_epoch": state["best"]["epoch"]}, checkpoint=checkpoint,
                         checkpoint_dir_name=f"epoch-{record['epoch']:04d}")
    _maybe_fail(record["epoch"], schedule, rank)


def _maybe_fail(epoch: int, schedule: Schedule, rank: int) -> None:
    """For fault-tolerance tests: the last worker kills its own process, once."""
    marker = schedule.fail_marker
    if schedule.fail_once_at_epoch == epoch and rank > 0 and marker and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), 9)
