"""augment_images against HALCON's procedure (reference/halcon.md, "augment_images")."""

import math

import numpy as np
import pytest

from dlcls import errors
from dlcls.procedures.augment import METHODS, augment_images


def batch(n=8, height=24, width=24, seed=0) -> np.ndarray:
    """Preprocessed-looking images: random values in the network range [-127, 128]."""
    return np.random.default_rng(seed).uniform(-127, 128, (n, height, width, 3)).astype(np.float32)


def changed(before: np.ndarray, after: np.ndarray) -> list[int]:
    return [i for i in range(len(before)) if not np.array_equal(before[i], after[i])]


@pytest.mark.parametrize("n, percent", [(8, None), (3, None), (7, 100), (10, 1), (5, 30)])
def test_ceil_of_percentage_is_augmented(n, percent):
    images = batch(n)
    names, values = (["brightness_variation"], [40]) if percent is None else \
        (["brightness_variation", "augmentation_percentage"], [40, percent])
    out = augment_images(images, names, values, seed=1)
    assert len(changed(images, out)) == math.ceil((percent or 50) / 100 * n)  # default 50 %


def test_exactly_one_method_per_image():
    images = batch(40) / 4  # far enough from the range limits that no brightness change is clipped
    out = augment_images(images, ["augmentation_percentage", "mirror", "brightness_variation"],
                         [100, "c", 30], seed=2)
    kinds = set()
    for before, after in zip(images, out):
        if np.array_equal(after, before[:, ::-1]):
            kinds.add("mirror")
        else:
            offset = after - before
            assert np.allclose(offset, offset.flat[0], atol=1e-4) and abs(offset.flat[0]) <= 30
            kinds.add("brightness")
    assert kinds == {"mirror", "brightness"}  # both drawn, never combined


@pytest.mark.parametrize("mirror, allowed", [
    ("r", {"r"}), ("c", {"c"}), ("rc", {"r", "c", "rc"}), ("cr", {"r", "c", "rc"}),
])
def test_mirror(mirror, allowed):
    images = batch(30)
    out = augment_images(images, ["augmentation_percentage", "mirror"], [100, mirror], seed=3)
    flips = {"r": lambda a: a[::-1], "c": lambda a: a[:, ::-1], "rc": lambda a: a[::-1, ::-1]}
    seen = {next(k for k, f in flips.items() if np.array_equal(after, f(before)))
            for before, after in zip(images, out)}
    assert seen == allowed


def test_rotate_by_steps_of_90():
    images = batch(20)
    out = augment_images(images, ["augmentation_percentage", "rotate"], [100, 90], seed=4)
    turns = {next(k for k in range(4) if np.array_equal(after, np.rot90(before, k)))
             for before, after in zip(images, out)}
    assert turns == {0, 1, 2, 3}  # 90, 180, 270 and 360 degrees


@pytest.mark.parametrize("name, value", [("rotate", 30), ("rotate", 90), ("rotate_range", 15),
                                         ("crop_percentage", 60), ("crop_pixel", 10), ("crop_pixel", 500),
                                         ("mirror", "rc")])
def test_geometry_keeps_size_and_values(name, value):
    """Outputs keep the input size (also for non-square images), and a constant image stays
    constant: rotations are cropped to the inner rectangle, nothing from outside leaks in."""
    images = np.full((6, 20, 32, 3), 17.5, np.float32)
    out = augment_images(images, ["augmentation_percentage", name], [100, value], seed=5)
    assert out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, 17.5, rtol=1e-6)


def test_crop_zooms_in():
    ramp = np.tile(np.linspace(-127, 128, 100, dtype=np.float32), (100, 1))[None, :, :, None]
    out = augment_images(ramp, ["augmentation_percentage", "crop_percentage"], [100, 50], seed=6)
    span = out[0, 50, :, 0].max() - out[0, 50, :, 0].min()
    assert 0.4 * 255 < span < 0.6 * 255  # half the width, stretched back to the full width
    whole = augment_images(ramp, ["augmentation_percentage", "crop_percentage"], [100, 100], seed=6)
    np.testing.assert_array_equal(whole, ramp)


def test_rotation_turns_content():
    image = np.full((1, 40, 40, 1), -100.0, np.float32)
    image[0, :, 18:22] = 100.0  # a vertical bar through the centre
    out = augment_images(image, ["augmentation_percentage", "rotate_range"], [100, 45], seed=7)[0, :, :, 0]
    top, bottom = np.argmax(out[2]), np.argmax(out[-3])
    assert abs(int(top) - int(bottom)) >= 2  # no longer vertical


def test_brightness_is_scaled_to_the_range_and_clipped():
    images = batch(50)
    out = augment_images(images, ["augmentation_percentage", "brightness_variation"], [100, 255], seed=8,
                         range_min=-1.0, range_max=1.0)
    assert out.min() >= -1.0 and out.max() <= 1.0
    small = np.zeros((50, 4, 4, 3), np.float32)
    shifted = augment_images(small, ["augmentation_percentage", "brightness_variation"], [100, 51], seed=8,
                             range_min=-1.0, range_max=1.0)
    offsets = shifted[:, 0, 0, 0]
    assert np.abs(offsets).max() <= 51 * 2 / 255 + 1e-6 and np.abs(offsets).max() > 0.2  # 51 gray levels = 0.4


def test_brightness_spot_is_a_smooth_bump():
    images = np.zeros((10, 32, 32, 1), np.float32)
    out = augment_images(images, ["augmentation_percentage", "brightness_variation_spot"], [100, 60], seed=9)
    for spot in out[:, :, :, 0]:
        peak = np.unravel_index(np.argmax(np.abs(spot)), spot.shape)
        assert 0 < np.abs(spot).max() <= 60
        assert np.abs(spot[peak]) > np.abs(spot).mean()  # one bump, falling off from its peak
        assert np.abs(np.diff(spot, axis=1)).max() < 20  # smooth, not a step


def test_seed_and_generator():
    images = batch(12)
    params = (["augmentation_percentage", "rotate_range", "brightness_variation_spot", "crop_pixel"], [80, 20, 50, 12])
    first = augment_images(images, *params, seed=10)
    np.testing.assert_array_equal(first, augment_images(images, *params, seed=10))
    np.testing.assert_array_equal(first, augment_images(images, *params, seed=np.random.default_rng(10)))
    assert not np.array_equal(first, augment_images(images, *params, seed=11))


def test_kinds_of_input_and_nothing_enabled():
    images = batch(4)
    as_list = augment_images(list(images), ["augmentation_percentage", "mirror"], [100, "r"], seed=0)
    assert isinstance(as_list, list) and len(as_list) == 4
    single = augment_images(images[0], ["augmentation_percentage", "mirror"], [100, "r"], seed=0)
    np.testing.assert_array_equal(single, images[0][::-1])
    assert augment_images(images, ["rotate", "mirror"], [0, "off"]) is images  # no method enabled


@pytest.mark.parametrize("names, values, error, match", [
    (["flip"], ["r"], errors.UnknownParamError, "unknown generic parameter"),
    (["augmentation_percentage"], [0], errors.WrongParamValueError, "1-100"),
    (["crop_percentage"], [120], errors.WrongParamValueError, "1-100 or 'off', got 120"),
    (["crop_pixel"], [0], errors.WrongParamValueError, "1 or more"),
    (["rotate"], [200], errors.WrongParamValueError, "0-180"),
    (["mirror"], ["x"], errors.WrongParamValueError, "'rc'"),
    (["brightness_variation"], ["lots"], errors.WrongParamValueError, "0-255"),
    (["mirror", "rotate"], ["r"], errors.WrongParamValueError, "one value per name"),
])
def test_parameter_errors(names, values, error, match):
    with pytest.raises(error, match=match):
        augment_images(batch(2), names, values)


def test_image_errors():
    with pytest.raises(errors.ImageTypeError, match="preprocess_dl_classifier_images"):
        augment_images(np.zeros((2, 8, 8, 3), np.uint8), "mirror", "r")
    with pytest.raises(errors.WrongParamValueError, match="no images"):
        augment_images([], "mirror", "r")


def test_methods_follow_halcons_order():
    assert list(METHODS) == ["crop_percentage", "crop_pixel", "rotate", "rotate_range", "mirror",
                             "brightness_variation", "brightness_variation_spot"]
