"""What the procedures' displays share: images for viewing, PNG bytes, writing them out.

HALCON draws into a window; dlcls writes PNG files (local paths or fsspec URLs) instead. Figures
are `matplotlib.figure.Figure` objects on an Agg canvas, so no pyplot global state is touched.
"""

import io
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from .. import errors
from ..core import decode, storage

NETWORK_RANGE = (-127.0, 128.0)  # HALCON's image_range_min/max of every built-in network


def is_uri(item) -> bool:
    return isinstance(item, (str, os.PathLike))


def to_uint8(image, image_range=NETWORK_RANGE) -> np.ndarray:
    """HxW or HxWx3 bytes for display. Real images are taken as in network range and mapped back
    to 0..255 (the inverse of preprocess_dl_classifier_images); other integers are clipped."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise errors.ImageTypeError(f"can display gray (HxW, HxWx1) or RGB (HxWx3) images, got shape {a.shape}")
    if a.dtype.kind == "f":
        low, high = image_range
        a = (np.nan_to_num(a.astype(np.float64)) - low) * (255.0 / (high - low))
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def to_pil(item, image_range=NETWORK_RANGE) -> Image.Image:
    """An image array, or a file path/URL read through fsspec and decoded with the limits and
    conversions of core.decode, as an 'L' or 'RGB' PIL image."""
    if not is_uri(item):
        return Image.fromarray(to_uint8(item, image_range))
    image = decode.decode_pil(storage.read_bytes(item))
    return image if image.mode in ("L", "RGB") else Image.fromarray(to_uint8(np.asarray(image), image_range))


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130, bbox_inches="tight", pad_inches=0.15,
                   facecolor=figure.get_facecolor())
    return buffer.getvalue()


def image_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def check_output(uri, suffix: str = ".png") -> None:
    """Fail before any work is done when an output name cannot be right."""
    if not is_uri(uri) or not os.fspath(uri).lower().endswith(suffix):
        raise errors.WrongParamValueError(f"output must be a path or URL ending in {suffix!r}, got {uri!r}")


def write(uri, data: bytes, suffix: str = ".png") -> None:
    check_output(uri, suffix)
    storage.write_bytes_atomic(os.fspath(uri), data)
