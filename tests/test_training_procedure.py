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


def numbered_images(count: int, size: int = 32) -> np.ndarray:
    """Float images in network range; image i is told apart by its top-left pixel (i) and made
    left-right asymmetric by a ramp, so that mirroring shows."""
    images = np.tile(np.linspace(-100, 100, size, dtype=np.float32), (count, size, 1))[..., None].repeat(3, axis=3)
    images[:, 0, 0, :] = np.arange(count, dtype=np.float32)[:, None]
    return images


def spy_batches(handle) -> list:
    """Records (the batch's images, the learning rate set) for every train_batch call."""
    calls = []
    original = handle.train_batch

    def train_batch(images, labels):
        calls.append((np.array(images), handle.get_param("learning_rate")))
        return original(images, labels)

    handle.train_batch = train_batch
    return calls


def test_training_order_is_shuffled_anew_every_epoch(small_classifier):
    handle = small_classifier(batch_size=4)
    images, labels = numbered_images(16), ["a", "b", "c", "a"] * 4
    calls = spy_batches(handle)
    dlcls.train_dl_classifier(handle, images, labels, images[:4], labels[:4], 3, progress=False)
    order = np.concatenate([batch[:, 0, 0, 0] for batch, _ in calls]).astype(int).reshape(3, 16)
    for epoch in order:
        assert sorted(epoch) == list(range(16))  # every image once per epoch (16 = 4 full batches)
    assert len({tuple(epoch) for epoch in order}) == 3 and list(order[0]) != list(range(16))


def test_augmentation_is_applied_to_the_training_batches(small_classifier):
    handle = small_classifier(batch_size=4)
    images, labels = numbered_images(8), ["a", "b"] * 4
    calls = spy_batches(handle)
    dlcls.train_dl_classifier(handle, images, labels, images[:4], labels[:4], 1, progress=False,
                              augmentation={"augmentation_percentage": 100, "mirror": "c"})
    seen = [image for batch, _ in calls for image in batch]
    assert len(seen) == 8
    for image in seen:  # every image mirrored left-right: its number now sits at the top right
        np.testing.assert_array_equal(image, images[int(image[0, -1, 0])][:, ::-1])
    calls.clear()
    dlcls.train_dl_classifier(handle, images, labels, images[:4], labels[:4], 1, progress=False)
    for image in (image for batch, _ in calls for image in batch):  # no augmentation asked: as given
        np.testing.assert_array_equal(image, images[int(image[0, 0, 0])])


def test_progress_prints_a_line_per_epoch_with_loss_and_errors(small_classifier, capsys):
    handle = small_classifier(batch_size=4)
    images, labels = numbered_images(8), ["a", "b"] * 4
    history = dlcls.train_dl_classifier(handle, images, labels, images[:4], labels[:4], 3)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    for k, line in enumerate(lines):
        assert line.startswith(f"epoch {k + 1:>3}/3 [")
        assert f"loss {history.losses[k]:.4f}" in line
        assert f"train error {100 * history.training_errors[k]:5.1f}%" in line
        assert f"val error {100 * history.validation_errors[k]:5.1f}%" in line
    assert lines[-1].count("#") == 20  # the bar is full at the end
    dlcls.train_dl_classifier(handle, images, labels, images[:4], labels[:4], 1, progress=False)
    assert capsys.readouterr() == ("", "")


def test_cosine_schedule_sets_the_rate_of_every_epoch(small_classifier):
    handle = small_classifier(batch_size=4)
    dlcls.set_dl_classifier_param(handle, "learning_rate", 0.02)
    images, labels = numbered_images(8), ["a", "b"] * 4
    calls = spy_batches(handle)
    history = dlcls.train_dl_classifier(handle, images, labels, images[:4], labels[:4], 4, strategy="cosine",
                                        progress=False)
    expected = [0.02 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]  # 0.02, 0.0171, 0.01, 0.0029
    assert history.learning_rates == pytest.approx(expected)
    assert [rate for _, rate in calls] == pytest.approx([r for r in expected for _ in range(2)])  # 2 batches each
    assert dlcls.get_dl_classifier_param(handle, "learning_rate") == 0.02


def test_history_feeds_the_progress_plot(small_classifier, tmp_path):
    handle = small_classifier(batch_size=4)
    images, labels = numbered_images(8), ["a", "b"] * 4
    history = dlcls.train_dl_classifier(handle, images, labels, images[:4], labels[:4], 3, step_epochs=1,
                                        step_factor=0.1, progress=False)
    figure = dlcls.plot_dl_classifier_training_progress(history.training_errors, history.validation_errors,
                                                        history.learning_rates, history.epochs,
                                                        output=str(tmp_path / "progress.png"))
    assert Image.open(tmp_path / "progress.png").size[0] > 500
    ax, right = figure.axes
    lines = {line.get_label(): line for line in ax.get_lines() + right.get_lines()}
    assert list(lines["validation error"].get_xdata()) == [1, 2, 3]
    assert list(lines["validation error"].get_ydata()) == pytest.approx([100 * e for e in history.validation_errors])
    assert list(lines["learning rate"].get_ydata())[1:] == pytest.approx(history.learning_rates)
    best = f"{100 * history.best_validation_error:.2f} % (epoch {history.best_epoch})"
    assert best in figure.texts[0].get_text()


def test_byte_images_are_preprocessed_once_for_training_and_evaluation(small_classifier):
    images, labels = separable_batch(np.random.default_rng(2), 24)
    as_bytes = np.clip(images + 127, 0, 255).astype(np.uint8)  # the uint8 images a user has
    runs = []
    for train in (as_bytes, dlcls.preprocess_dl_classifier_images(as_bytes, small_classifier())):
        dlcls.set_seed(0)
        handle = small_classifier(batch_size=8)
        history = dlcls.train_dl_classifier(handle, train, labels, train[:8], labels[:8], 2, progress=False)
        runs.append((history, handle.network.state_dict()))
    (bytes_history, bytes_state), (float_history, float_state) = runs
    assert bytes_history.epochs == [1, 2]
    assert bytes_history.validation_errors == float_history.validation_errors
    assert bytes_history.losses == float_history.losses
    assert all(torch.equal(bytes_state[k], float_state[k]) for k in bytes_state)
