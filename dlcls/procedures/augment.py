"""augment_images: HALCON's random distortion of preprocessed (real, network-range) images.

As in HALCON, ceil(augmentation_percentage% of N) randomly chosen images get exactly one method,
drawn uniformly among the enabled ones; the others are returned unchanged. Differences, chosen so
that augmented images can go straight into the same training batch:
- every output has the size of its input: crops, and 90-degree turns of non-square images, are
  resized back (Pillow bilinear), as are rotations, which HALCON crops to the inner rectangle;
- brightness changes are given in byte gray levels (0-255) as in HALCON and scaled to the network
  range (x (range_max - range_min) / 255); results are clipped to [range_min, range_max].
Randomness comes from numpy: `seed` is an int, None or a np.random.Generator.
"""

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .. import errors
from ..core.preprocess import resize
from ..core.seeds import numpy_rng
from .genparams import GenParam, parse

Limits = tuple[float, float]  # (range_min, range_max) of the network
Apply = Callable[[np.ndarray, Any, np.random.Generator, Limits], np.ndarray]


@dataclass(frozen=True)
class Method:
    check: Callable[[Any], Any]  # the value as given -> the value used, or raises saying what is allowed
    enabled: Callable[[Any], bool]
    apply: Apply  # HxWxC float32 image -> distorted image (any size; resized back afterwards)
    default: Any


def augment_images(images, gen_param_name=(), gen_param_value=(), seed=None, *,
                   range_min: float = -127.0, range_max: float = 128.0):
    """Preprocessed images (NxHxWxC array, HxWxC array or list of them) -> augmented images of the
    same kind and sizes. Generic parameters: 'augmentation_percentage' (50; 1-100),
    'crop_percentage' ('off' | 1-100), 'crop_pixel' ('off' | >= 1), 'rotate' (step, 0-180),
    'rotate_range' (0-180), 'mirror' ('off', 'r', 'c', 'rc', 'cr'), 'brightness_variation' (0-255),
    'brightness_variation_spot' (0-255). With no method enabled the images are returned as given."""
    settings = parse(gen_param_name, gen_param_value, _PARAMS)
    enabled = [(name, settings[name]) for name, method in METHODS.items() if method.enabled(settings[name])]
    if not enabled:
        return images
    batch = _image_list(images)
    rng = numpy_rng(seed)
    count = math.ceil(settings["augmentation_percentage"] / 100 * len(batch))
    plan = dict(zip(rng.permutation(len(batch))[:count].tolist(), (rng.random(count) * len(enabled)).astype(int)))
    out = list(batch)
    for index in sorted(plan):  # HALCON distorts in image order; keeps the draws reproducible
        name, value = enabled[plan[index]]
        out[index] = _apply(METHODS[name].apply, batch[index], value, rng, (range_min, range_max))
    return _like(images, out)


def _apply(apply: Apply, image: np.ndarray, value, rng: np.random.Generator, limits: Limits) -> np.ndarray:
    height, width = image.shape[:2]
    return resize(np.ascontiguousarray(apply(image, value, rng, limits)), width, height)


def _crop_percentage(image: np.ndarray, percent: float, rng: np.random.Generator, limits: Limits) -> np.ndarray:
    height, width = image.shape[:2]
    rate = percent / 100
    top = math.floor((1 - rate) * height * rng.random())
    left = math.floor((1 - rate) * width * rng.random())
    return image[top : top + max(1, int(rate * height)), left : left + max(1, int(rate * width))]


def _crop_pixel(image: np.ndarray, side: float, rng: np.random.Generator, limits: Limits) -> np.ndarray:
    """A side x side window at a random place (clipped to images smaller than `side`)."""
    height, width = image.shape[:2]
    rows, cols = min(int(side), height), min(int(side), width)
    top, left = int(rng.random() * (height - rows)), int(rng.random() * (width - cols))
    return image[top : top + rows, left : left + cols]


def _rotate_step(image: np.ndarray, step: float, rng: np.random.Generator, limits: Limits) -> np.ndarray:
    """A random multiple of `step` degrees (step, 2 step, ... up to about 360)."""
    return _rotate(image, step * (int(360.0 / step * rng.random()) + 1))


def _rotate_range(image: np.ndarray, largest: float, rng: np.random.Generator, limits: Limits) -> np.ndarray:
    """A random whole angle of 1 .. `largest` degrees, either way round."""
    angle = int(largest * rng.random()) + 1
    return _rotate(image, 360.0 - angle if rng.random() >= 0.5 else angle)


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Counter-clockwise about the centre; other than whole quarter turns cropped to the largest
    upright rectangle holding only image pixels (HALCON's inner rectangle)."""
    if degrees == int(degrees) and int(degrees) % 90 == 0:
        return np.rot90(image, int(degrees) // 90 % 4)
    height, width = image.shape[:2]
    planes = [Image.fromarray(np.ascontiguousarray(image[:, :, k])).rotate(degrees, Image.Resampling.BILINEAR)
              for k in range(image.shape[2])]
    rotated = np.stack([np.asarray(p) for p in planes], axis=2)
    inner_w, inner_h = _inner_rectangle(width, height, math.radians(degrees))
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    return rotated[top : top + inner_h, left : left + inner_w]


def _inner_rectangle(width: int, height: int, angle: float) -> tuple[int, int]:
    """Width and height of the largest upright rectangle inside a width x height rectangle turned
    by `angle` about its centre (and inside the original frame)."""
    sin, cos = abs(math.sin(angle)), abs(math.cos(angle))
    long, short = max(width, height), min(width, height)
    if short <= 2 * sin * cos * long or abs(sin - cos) < 1e-10:
        half = short / 2  # the short side limits: the rectangle touches both long sides
        inner = (half / sin, half / cos) if width >= height else (half / cos, half / sin)
    else:
        cos2 = cos * cos - sin * sin
        inner = ((width * cos - height * sin) / cos2, (height * cos - width * sin) / cos2)
    # One pixel less on each side keeps bilinear samples off the filled border.
    return max(1, min(width, math.floor(inner[0]) - 2)), max(1, min(height, math.floor(inner[1]) - 2))


def _mirror(image: np.ndarray, methods: str, rng: np.random.Generator, limits: Limits) -> np.ndarray:
    """Each letter of `methods` with probability 1/len, drawn again until at least one is chosen."""
    chosen = ""
    while not chosen:
        chosen = "".join(letter for letter in methods if rng.random() < 1 / len(methods))
    if "c" in chosen:
        image = image[:, ::-1]
    if "r" in chosen:
        image = image[::-1]
    return image


def _brightness(image: np.ndarray, variation: float, rng: np.random.Generator, limits: Limits) -> np.ndarray:
    offset = (rng.random() * 2 - 1) * variation * (limits[1] - limits[0]) / 255
    return np.clip(image + np.float32(offset), *limits).astype(np.float32)


def _brightness_spot(image: np.ndarray, variation: float, rng: np.random.Generator, limits: Limits) -> np.ndarray:
    """A Gaussian spot, peak +-variation, of size 0.5-1 x width at a random place. HALCON builds it
    with gen_gauss_filter(1, 1, 0, 'none', 'dc_center', size, size): sigma = size / (2 pi)."""
    height, width = image.shape[:2]
    peak = (rng.random() * 2 - 1) * variation * (limits[1] - limits[0]) / 255
    size = width * (rng.random() / 2 + 0.5)
    row, col = rng.random() * height, rng.random() * width
    squared = (np.arange(height)[:, None] - row) ** 2 + (np.arange(width)[None, :] - col) ** 2
    spot = peak * np.exp(-squared / (2 * (size / (2 * math.pi)) ** 2))
    return np.clip(image + spot[:, :, None].astype(np.float32), *limits).astype(np.float32)


def _number_in(low: float, high: float = math.inf, *, off: bool = False) -> Callable[[Any], Any]:
    """A check for a number in [low, high], or also 'off' when `off`."""
    def check(value):
        if off and value == "off":
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
            allowed = f"a number {low:g}" + (f"-{high:g}" if high != math.inf else " or more")
            allowed += " or 'off'" if off else ""
            raise errors.WrongParamValueError(f"must be {allowed}, got {value!r}")
        return value
    return check


def _mirror_check(value):
    if value not in ("off", "r", "c", "rc", "cr"):
        raise errors.WrongParamValueError(f"must be 'off', 'r', 'c', 'rc' or 'cr', got {value!r}")
    return value


def _positive(value) -> bool:
    return value != "off" and value > 0


METHODS: dict[str, Method] = {  # in HALCON's order, which the random choice of a method follows
    "crop_percentage": Method(_number_in(1, 100, off=True), _positive, _crop_percentage, "off"),
    "crop_pixel": Method(_number_in(1, off=True), _positive, _crop_pixel, "off"),
    "rotate": Method(_number_in(0, 180), _positive, _rotate_step, 0),
    "rotate_range": Method(_number_in(0, 180), _positive, _rotate_range, 0),
    "mirror": Method(_mirror_check, lambda value: value != "off", _mirror, "off"),
    "brightness_variation": Method(_number_in(0, 255), _positive, _brightness, 0),
    "brightness_variation_spot": Method(_number_in(0, 255), _positive, _brightness_spot, 0),
}
_PARAMS = {"augmentation_percentage": GenParam(50, _number_in(1, 100)),
           **{name: GenParam(method.default, method.check) for name, method in METHODS.items()}}


def _image_list(images) -> list[np.ndarray]:
    arrays = list(images) if isinstance(images, (list, tuple)) or np.ndim(images) == 4 else [images]
    if not arrays:
        raise errors.WrongParamValueError("there are no images to augment")
    return [_real_image(a) for a in arrays]


def _like(images, out: list[np.ndarray]):
    """The augmented images in the form they were given: one array, a batch array or a list."""
    if not isinstance(images, np.ndarray):
        return out
    return np.stack(out) if images.ndim == 4 else out[0]


def _real_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype.kind != "f" or image.ndim not in (2, 3):
        raise errors.ImageTypeError(f"augment_images takes preprocessed real images (HxWxC float), got {image.dtype} "
                                    f"of shape {image.shape}: run preprocess_dl_classifier_images first")
    return (image[:, :, None] if image.ndim == 2 else image).astype(np.float32, copy=False)
