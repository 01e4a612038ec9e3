"""train_dl_classifier: HALCON's reference training loop on one machine.

Per epoch: shuffle, cut into full batches of batch_size * batch_size_multiplier (the remainder is
dropped, as HALCON does), augment, train_dl_classifier_batch; then the top-1 error on a training
subset and on the validation set, the best model kept, the learning rate changed by the schedule.
The history it returns feeds plot_dl_classifier_training_progress.
"""

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import errors
from ..classifier import DLClassifier
from ..core import storage
from .augment import augment_images
from .dataset import select_percentage_dl_classifier_data
from .evaluate import apply_dl_classifier_batchwise
from .preprocess import preprocess_dl_classifier_images


@dataclass
class TrainingHistory:
    epochs: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # mean training loss of each epoch
    training_errors: list[float] = field(default_factory=list)  # top-1 error on the training subset
    validation_errors: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)  # the rate each epoch trained with
    images_per_second: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_validation_error: float = math.inf


def learning_rate_at(epoch: int, initial: float, epochs: int, strategy: str = "step",
                     step_epochs: int = 0, step_factor: float = 0.5) -> float:
    """The learning rate for 0-based `epoch`: HALCON's strategy multiplies it by `step_factor`
    every `step_epochs` epochs (0: constant); 'cosine' anneals it from `initial` towards 0."""
    if strategy == "cosine":
        return initial * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if strategy != "step":
        raise errors.WrongParamValueError(f"learning-rate strategy must be 'step' or 'cosine', got {strategy!r}")
    return initial * step_factor ** (epoch // step_epochs) if step_epochs > 0 else initial


def top1_error(handle: DLClassifier, images, labels) -> float:
    """Top-1 error of `handle` on preprocessed images or image files."""
    _, ranked, _ = apply_dl_classifier_batchwise(images, handle)
    predicted = [r[0] for r in ranked]
    return float(np.mean(np.array(handle.label_indices(predicted, len(predicted))) !=
                         np.array(handle.label_indices(labels, len(labels)))))


def train_dl_classifier(handle: DLClassifier, train_images, train_labels, validation_images, validation_labels,
                        epochs: int, *, augmentation: dict | None = None, strategy: str = "step",
                        step_epochs: int = 0, step_factor: float = 0.5, training_error_percent: float = 20,
                        seed: int = 42, best_model: str | None = None, restore_best: bool = True,
                        progress: bool = True) -> TrainingHistory:
    """Train for `epochs` epochs. Images are preprocessed float arrays (N x H x W x C), image files
    (paths/URLs, preprocessed batch by batch), or images in memory that preprocess_dl_classifier_images
    takes (uint8 arrays, PIL images: preprocessed once, up front); labels are class names or indices.
    `augmentation`: augment_images parameters, e.g. {'mirror': 'rc'}. `strategy` 'step' multiplies
    the learning rate by `step_factor` every `step_epochs` epochs, 'cosine' anneals it. `best_model`:
    where to write the model whenever the validation error reaches a new best (<=, as HALCON).
    `seed` decides shuffling, augmentation and dropout; the caller's random state is left as it was."""
    _check_sets(train_images, train_labels, validation_images, validation_labels, epochs, step_factor)
    train_images, validation_images = _prepare(train_images, handle), _prepare(validation_images, handle)
    step = handle.get_param("batch_size") * handle.get_param("batch_size_multiplier")
    if len(train_images) < step:
        raise errors.BatchSizeError(f"{len(train_images)} training images are fewer than one batch of {step}; "
                                    "lower batch_size or batch_size_multiplier")
    subset, subset_labels = select_percentage_dl_classifier_data(
        list(range(len(train_images))), list(train_labels), training_error_percent, seed=seed)
    initial_rate, history, rng = handle.get_param("learning_rate"), TrainingHistory(), np.random.default_rng(seed)
    best = None
    with torch.random.fork_rng(devices=_cuda_devices()):
        torch.manual_seed(seed)
        for epoch in range(epochs):
            rate = learning_rate_at(epoch, initial_rate, epochs, strategy, step_epochs, step_factor)
            handle.set_param("learning_rate", rate)
            start, losses = time.perf_counter(), _epoch(handle, train_images, train_labels, step, augmentation, rng)
            speed = len(losses) * step / (time.perf_counter() - start)
            train_error = top1_error(handle, _take(train_images, subset), subset_labels)
            _record(history, epoch + 1, float(np.mean(losses)), train_error,
                    top1_error(handle, validation_images, validation_labels), rate, speed)
            best = _keep_best(handle, history, best_model) or best
            if progress:
                _print_progress(history, epochs)
    handle.set_param("learning_rate", initial_rate)
    if restore_best and best is not None:
        handle.network.load_state_dict(DLClassifier.from_bytes(best).network.state_dict())
    return history


def _keep_best(handle: DLClassifier, history: TrainingHistory, best_model: str | None) -> bytes | None:
    """The model's bytes when this epoch's validation error is a new best (<=, as HALCON), written
    to `best_model` when given; else None."""
    if history.validation_errors[-1] > history.best_validation_error:
        return None
    history.best_epoch, history.best_validation_error = history.epochs[-1], history.validation_errors[-1]
    data = handle.to_bytes(include_optimizer=False)
    if best_model:
        storage.write_bytes_atomic(best_model, data)
    return data


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def _epoch(handle, images, labels, step: int, augmentation: dict | None, rng) -> list[float]:
    order = rng.permutation(len(images))
    losses = []
    for start in range(0, len(order) - step + 1, step):  # full batches only, as HALCON
        chosen = order[start:start + step]
        batch = _load(_take(images, chosen), handle)
        if augmentation:
            batch = augment_images(batch, list(augmentation), list(augmentation.values()), seed=rng,
                                   range_min=handle.get_param("image_range_min"),
                                   range_max=handle.get_param("image_range_max"))
        losses.append(handle.train_batch(batch, [labels[i] for i in chosen]).loss)
    return losses


def _take(images, indices):
    if isinstance(images, np.ndarray):
        return images[np.asarray(indices)]
    return [images[i] for i in indices]


def _prepare(images, handle: DLClassifier):
    """Image files (paths/URLs) stay files, read batch by batch; float arrays are taken as
    preprocessed; anything else in memory (byte arrays, PIL images, encoded bytes) is preprocessed
    here, once, so that the training batches and the evaluation see the same float images."""
    if (isinstance(images, np.ndarray) and images.dtype.kind == "f") or _are_files(images):
        return images
    return preprocess_dl_classifier_images(images, handle)


def _are_files(images) -> bool:
    return isinstance(images, (list, tuple)) and all(isinstance(i, (str, os.PathLike)) for i in images)


def _load(images, handle: DLClassifier):
    """A batch as float arrays: prepared arrays as they are, files read and preprocessed."""
    return images if isinstance(images, np.ndarray) else preprocess_dl_classifier_images(images, handle)


def _record(history: TrainingHistory, epoch, loss, train_error, val_error, rate, speed) -> None:
    history.epochs.append(epoch)
    history.losses.append(loss)
    history.training_errors.append(train_error)
    history.validation_errors.append(val_error)
    history.learning_rates.append(rate)
    history.images_per_second.append(speed)


def _print_progress(history: TrainingHistory, epochs: int) -> None:
    done = history.epochs[-1]
    bar = "#" * (20 * done // epochs)
    print(f"epoch {done:>3}/{epochs} [{bar:<20}] loss {history.losses[-1]:.4f}  "
          f"train error {100 * history.training_errors[-1]:5.1f}%  "
          f"val error {100 * history.validation_errors[-1]:5.1f}%  lr {history.learning_rates[-1]:.1e}  "
          f"{history.images_per_second[-1]:.0f} img/s", file=sys.stderr, flush=True)


def _check_sets(train_images: Sequence, train_labels: Sequence, validation_images: Sequence,
                validation_labels: Sequence, epochs: int, step_factor: float) -> None:
    if len(train_images) != len(train_labels) or len(validation_images) != len(validation_labels):
        raise errors.WrongParamValueError("give one label per image, for the training and the validation set")
    if not len(train_images) or not len(validation_images):
        raise errors.WrongParamValueError("the training and the validation set must not be empty")
    if not isinstance(epochs, int) or epochs < 1:
        raise errors.WrongParamValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not step_factor > 0:
        raise errors.WrongParamValueError(f"step_factor must be > 0, got {step_factor!r}")
