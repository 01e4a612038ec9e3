"""train_dl_classifier: HALCON's reference loop, schedules, best model, and the demo end to end."""

import math

import numpy as np
import pytest
import torch
from conftest import separable_batch
from PIL import Image

import dlcls
from dlcls import errors
from dlcls.procedures.training import learning_rate_at


def test_learning_rate_strategies():
    assert [learning_rate_at(e, 0.1, 6, "step", 2, 0.5) for e in range(6)] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert learning_rate_at(5, 0.1, 6) == 0.1  # no step: constant
    cosine = [learning_rate_at(e, 0.1, 4, "cosine") for e in range(4)]
    assert cosine[0] == 0.1 and cosine == sorted(cosine, reverse=True)
    assert cosine[2] == pytest.approx(0.05)
    with pytest.raises(errors.WrongParamValueError):
        learning_rate_at(0, 0.1, 4, "linear")


def test_training_learns_keeps_the_best_model_and_records_history(small_classifier, tmp_path):
    dlcls.set_seed(0)
    handle = small_classifier(batch_size=16)
    dlcls.set_dl_classifier_param(handle, "learning_rate", 0.02)
    rng = np.random.default_rng(0)
    train, train_labels = separable_batch(rng, 160)
    val, val_labels = separable_batch(rng, 40)
    history = dlcls.train_dl_classifier(handle, train, list(train_labels), val, list(val_labels), 6,
                                        augmentation={"mirror": "r"}, step_epochs=4, step_factor=0.1,
                                        best_model=str(tmp_path / "best.hdl"), progress=False)
    assert history.epochs == [1, 2, 3, 4, 5, 6]
    assert history.learning_rates == pytest.approx([0.02] * 4 + [0.002] * 2)
    assert len(history.losses) == len(history.training_errors) == len(history.validation_errors) == 6
    best = min(history.validation_errors)
    assert history.best_validation_error == best < 0.2  # chance is 2/3
    assert history.validation_errors[history.best_epoch - 1] == best
    assert history.best_epoch == max(i + 1 for i, e in enumerate(history.validation_errors) if e == best)
    saved = dlcls.read_dl_classifier(str(tmp_path / "best.hdl"))
    confidences = dlcls.apply_dl_classifier(val, saved).confidences
    assert np.mean(confidences.argmax(1) != val_labels) == pytest.approx(best)
    assert np.array_equal(dlcls.apply_dl_classifier(val, handle).confidences, confidences)  # best restored
    assert dlcls.get_dl_classifier_param(handle, "learning_rate") == 0.02


def test_full_batches_only_and_files_are_preprocessed_on_the_fly(small_classifier, tmp_path):
    handle = small_classifier(batch_size=4)
    dlcls.set_dl_classifier_param(handle, "batch_size_multiplier", 2)
    files, labels = [], []
    for i, (image, label) in enumerate(zip(*separable_batch(np.random.default_rng(1), 11))):
        path = tmp_path / f"{i}.png"
        Image.fromarray(((image + 127) / 255 * 255).clip(0, 255).astype(np.uint8)).save(path)
        files.append(str(path))
        labels.append(["a", "b", "c"][label])
    steps = []
    original = handle.train_batch
    handle.train_batch = lambda images, batch_labels: steps.append(len(images)) or original(images, batch_labels)
    history = dlcls.train_dl_classifier(handle, files, labels, files[:3], labels[:3], 2, progress=False)
    assert steps == [8, 8]  # 11 images: one full batch of 4 * 2 per epoch, the rest dropped
    assert math.isfinite(history.losses[-1])


def test_bad_arguments_are_refused(small_classifier):
    handle = small_classifier(batch_size=8)
    images, labels = separable_batch(np.random.default_rng(0), 6)
    for call in [lambda: dlcls.train_dl_classifier(handle, images, labels[:5], images, labels, 1),
                 lambda: dlcls.train_dl_classifier(handle, images, labels, images[:0], labels[:0], 1),
                 lambda: dlcls.train_dl_classifier(handle, images, labels, images, labels, 0)]:
        with pytest.raises(errors.WrongParamValueError):
            call()
    with pytest.raises(errors.BatchSizeError, match="fewer than one batch"):
        dlcls.train_dl_classifier(handle, images, labels, images, labels, 1)


def test_set_seed_makes_procedures_without_a_seed_reproducible():
    files, labels = [f"{i}.png" for i in range(40)], ["a", "b"] * 20
    images = np.random.default_rng(0).uniform(-127, 128, (6, 16, 16, 3)).astype(np.float32)
    runs = []
    for _ in range(2):
        dlcls.set_seed(5)
        split = dlcls.split_dl_classifier_data_set(files, labels, 50, 25)
        augmented = dlcls.augment_images(images, ["augmentation_percentage", "rotate_range", "mirror"],
                                         [100, 30, "rc"])
        runs.append((split, augmented))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])


def test_training_is_reproducible_whatever_the_callers_random_state(small_classifier):
    states = []
    images, labels = separable_batch(np.random.default_rng(0), 32, size=48)
    for outside_seed in (1, 2):
        dlcls.set_seed(0)
        handle = small_classifier("enhanced", size=48, batch_size=8)  # enhanced: dropout draws random numbers
        torch.manual_seed(outside_seed)
        dlcls.train_dl_classifier(handle, images, labels, images[:8], labels[:8], 1, seed=3, progress=False)
        states.append(handle.network.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
