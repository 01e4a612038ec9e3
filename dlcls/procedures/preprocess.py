"""preprocess_dl_classifier_images: images of any kind -> the float32 batches the network takes.

Images may be numpy arrays (HxW, HxWxC, NxHxWxC), PIL images, encoded image bytes, file paths or
fsspec URLs (s3://...), or lists mixing these. Files are decoded by core.decode (EXIF orientation,
gray or RGB, see there); PIL images get the same orientation and mode conversion, so
Image.open(path) and path give the same pixels (a large JPEG aside: only a path can be drafted).
The pixels are then prepared by core.preprocess, which the Ray jobs and the Serve replicas share.
"""

import os
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from .. import errors
from ..core import decode, storage
from ..core.preprocess import Box, domain_boxes, preprocess_arrays
from .genparams import GenParam, one_of, parse

_PARAMS = {
    "contrast_normalization": GenParam("false", one_of("false", "true")),
    "domain_handling": GenParam("full_domain", one_of("full_domain", "crop_domain")),
}
_GEOMETRY = ("image_width", "image_height", "image_num_channels", "image_range_min", "image_range_max")


def preprocess_dl_classifier_images(images, handle, gen_param_name=(), gen_param_value=(), *,
                                    domains: Sequence[Box | None] | None = None,
                                    max_pixels: int = decode.DEFAULT_MAX_PIXELS, jpeg_draft: bool = True) -> np.ndarray:
    """Images -> float32 N x image_height x image_width x image_num_channels in the handle's range.

    Generic parameters: 'contrast_normalization' 'false' (default) | 'true'; 'domain_handling'
    'full_domain' (default) | 'crop_domain'. Arrays carry no HALCON domain, so with 'crop_domain'
    `domains` gives one (x0, y0, x1, y1) box (x1, y1 exclusive) or None per image; without it every
    image has its full domain, and `domains` without 'crop_domain' is refused (it would be ignored).
    Files with more than `max_pixels` pixels are refused. `jpeg_draft` lets large JPEG files decode
    at reduced scale (see core.decode); False decodes them fully.
    """
    settings = parse(gen_param_name, gen_param_value, _PARAMS)
    contrast, crop = settings["contrast_normalization"] == "true", settings["domain_handling"] == "crop_domain"
    if domains is not None and not crop:
        raise errors.WrongParamValueError("domains are only used with 'domain_handling' 'crop_domain': pass "
                                          "gen_param_name='domain_handling', gen_param_value='crop_domain' "
                                          "with them, or leave domains out")
    if not hasattr(handle, "get_param"):
        raise errors.WrongHandleTypeError(f"expected a classifier handle, got {type(handle).__name__}")
    width, height, channels, range_min, range_max = (handle.get_param(name) for name in _GEOMETRY)
    items = _flatten(images)
    if not items:
        raise errors.WrongParamValueError("no images given; pass arrays, PIL images, image bytes or file paths")
    boxes = domain_boxes(domains if crop else None, len(items))
    # The JPEG draft decodes near the network size, so not where a box refers to full-size pixels.
    targets = [(width, height) if jpeg_draft and box is None else None for box in boxes]
    # A generator: each file is decoded only when its turn comes, so one full-size image is in memory at a time.
    loaded = (_load(item, target, max_pixels) for item, target in zip(items, targets))
    return preprocess_arrays(loaded, width, height, channels, range_min, range_max, contrast, boxes)


def _flatten(images) -> list:
    """Every image as one item: an HxW(xC) array, a PIL image, bytes or a path/URL."""
    if isinstance(images, (list, tuple)):
        return [item for entry in images for item in _flatten(entry)]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


def _load(item, target: tuple[int, int] | None, max_pixels: int) -> np.ndarray | Image.Image:
    for kinds, load in _LOADERS:
        if isinstance(item, kinds):
            return load(item, target, max_pixels)
    raise errors.ImageTypeError(f"cannot preprocess a {type(item).__name__}: pass numpy arrays, PIL images, "
                                "encoded image bytes, or file paths / URLs")


def _from_file(uri, target: tuple[int, int] | None, max_pixels: int) -> Image.Image:
    try:
        return decode.decode_pil(storage.read_bytes(uri), max_pixels, target)
    except errors.ImageDecodeError as e:
        raise type(e)(f"{os.fspath(uri)}: {e.message}") from e.__cause__


_LOADERS: list[tuple[type | tuple[type, ...], Callable]] = [
    (np.ndarray, lambda item, target, max_pixels: item),
    (Image.Image, lambda item, target, max_pixels: decode.normalize_mode(decode.upright(item))),
    ((bytes, bytearray, memoryview), lambda item, target, max_pixels: decode.decode_pil(bytes(item), max_pixels,
                                                                                        target)),
    ((str, os.PathLike), _from_file),
]
