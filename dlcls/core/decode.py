"""Bytes of an image file -> an HxWxC numpy array, the way a user expects to see the file.

Choices:
- formats: those of HALCON's data-set extension list that Pillow reads (BMP, GIF, JPEG, PCX, PNG,
  PBM/PGM/PPM/PNM, TIFF); anything else is refused before a decoder runs. GIF and TIFF: first frame.
- orientation: the EXIF orientation is applied, so a phone photo stands upright; `upright` does
  the same for PIL images a user opened.
- channels: the result has 1 (gray) or 3 (RGB) channels. Palette images become RGB, or gray when
  every palette entry is gray; CMYK and YCbCr become RGB; 1-bit becomes 0/255.
- alpha is dropped, not composited: the colour stored under a transparent pixel is kept, as
  Pillow's convert('RGB') does (what most pipelines a user compares against do).
- 16-bit gray (PNG, TIFF, PGM) is scaled to 8 bit by rounding v * 255 / 65535, so 0 -> 0,
  65535 -> 255 and an 8-bit value stored as v * 257 comes back exactly. Pillow's 32-bit 'I' mode
  is read as 16-bit data.
- 16-bit colour PNG and TIFF (RGB, RGBA, and PNG gray with alpha, which Pillow opens as RGBA and
  so comes back as 3 equal channels) keep Pillow's high byte, v >> 8: at most 1 gray level below
  the rounding above, and exact for values stored as v * 257. Pillow has no 16-bit colour mode,
  and undoing PNG's row filters in numpy would cost far more than the decode. 16-bit colour PPM
  is rounded (Pillow scales it).
- 32-bit float images ('F') are returned as float32: HALCON reads them as real images.
- size limit: the pixel count from the header is checked against max_pixels before anything is
  decoded; max_pixels is the only limit. Pillow's own (a process-wide MAX_IMAGE_PIXELS that warns
  above ~89 and refuses above ~179 megapixels) is not consulted, so max_pixels can be raised
  past it per call, with no global state to change. TIFF is the exception: Pillow checks its
  tiles against MAX_IMAGE_PIXELS again when it loads them, so a TIFF above ~179 megapixels is
  refused whatever max_pixels says.
- draft: with `target_size`, a JPEG at least twice as large in both sides is decoded by libjpeg at
  1/2, 1/4 or 1/8 scale (never below the target size), 2-4x faster. After the bilinear resize to
  the target, photographs differ from the full decode by less than DRAFT_MEAN_TOLERANCE gray levels
  on average (about 0.8 measured, single pixels up to ~20 at edges; tests/test_decode_preprocess.py
  checks it). Pixel-scale noise differs more (about 7 levels) as libjpeg's DCT scaling filters
  differently; pass no target_size where the full decode is required.
"""

import contextlib
import io
import struct
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageOps

from .. import errors

DEFAULT_MAX_PIXELS = 40_000_000
FORMATS = ("BMP", "GIF", "JPEG", "PCX", "PNG", "PPM", "TIFF")  # Pillow's names; PPM reads PBM/PGM/PPM/PNM
_FORMAT_NAMES = "BMP, GIF, JPEG, PCX, PNG, PBM/PGM/PPM/PNM, TIFF"
DRAFT_MEAN_TOLERANCE = 1.5
_DRAFT_FORMATS = {"JPEG", "MPO"}
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_TURNED = {2, 3, 4, 5, 6, 7, 8}  # EXIF orientations other than "as stored"
_ORIENTATION = 0x0112


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 target_size: tuple[int, int] | None = None) -> np.ndarray:
    """The image in `data` as HxWx1 or HxWx3 uint8 (float32 for float files). `target_size`
    (width, height) is the size the caller will resize to; it only enables the JPEG draft."""
    return pil_to_array(decode_pil(data, max_pixels, target_size))


def decode_pil(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
               target_size: tuple[int, int] | None = None) -> Image.Image:
    """Like decode_image, as a PIL image of mode 'L', 'RGB' or 'F' (saves a copy before a resize)."""
    image = open_image(data, max_pixels)
    if target_size is not None:
        _draft(image, target_size)
    _load(image)
    return normalize_mode(image)


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The lazily opened image (only the header is read), checked against `max_pixels`."""
    if not data:
        raise errors.ImageDecodeError("the file is empty (0 bytes); it is not an image")
    with _bad_data("header"):
        image = _open(data)
    width, height = image.size
    if width * height > max_pixels:
        raise errors.ImageTooLargeError(
            f"the image is {width}x{height} = {width * height} pixels, more than max_pixels={max_pixels}; "
            "scale it down or raise max_pixels if the file is trusted")
    return image


def _open(data: bytes) -> Image.Image:
    """Image.open(data, formats=FORMATS) without its decompression-bomb check, whose limit is a
    process global: max_pixels, checked right after on the same header, takes its place."""
    if not all(name in Image.OPEN for name in FORMATS):
        Image.init()
    for name in FORMATS:
        factory, accept = Image.OPEN[name]
        accepted = accept is None or accept(data[:16])
        if accepted and not isinstance(accepted, str):  # a str is Pillow's "recognised but unsupported"
            try:
                return factory(io.BytesIO(data), "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue  # as Image.open: the next format may still read it
    raise errors.ImageDecodeError(f"not an image in a supported format ({_FORMAT_NAMES}); it starts with "
                                  f"{bytes(data[:16])!r}. Convert it to PNG or JPEG")


def _load(image: Image.Image) -> None:
    """Decode the pixels and turn the image upright."""
    with _bad_data("data"):
        image.load()
        ImageOps.exif_transpose(image, in_place=True)


@contextlib.contextmanager
def _bad_data(part: str) -> Iterator[None]:
    """One clear error for whatever Pillow raises on bad data (OSError, SyntaxError, struct.error, ...)."""
    try:
        yield
    except Image.DecompressionBombError as e:
        raise errors.ImageTooLargeError(f"{e}; such images are refused as decompression bombs") from None
    except (errors.HalconError, MemoryError):
        raise
    except Exception as e:
        raise errors.ImageDecodeError(
            f"the image {part} is truncated or corrupt ({e}); re-export or remove the file") from e


def upright(image: Image.Image) -> Image.Image:
    """A PIL image turned as its EXIF orientation says: a turned copy when it has to be turned, else
    the image itself. The caller's image is never changed."""
    if image.getexif().get(_ORIENTATION) not in _TURNED:
        return image
    with _bad_data("data"):
        return ImageOps.exif_transpose(image)


def _draft(image: Image.Image, target_size: tuple[int, int]) -> None:
    """Let libjpeg decode at a reduced scale when the image is at least 2x the target."""
    if image.format not in _DRAFT_FORMATS:
        return
    width, height = target_size
    if image.getexif().get(_ORIENTATION) in _TRANSPOSED:
        width, height = height, width  # the file stores the image before it is turned upright
    if image.width >= 2 * width and image.height >= 2 * height:
        image.draft(image.mode, (width, height))


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> HxWx1 / HxWx3 uint8, or HxWx1 float32 for mode 'F'."""
    array = np.asarray(normalize_mode(image))
    return array if array.ndim == 3 else array[:, :, None]


def normalize_mode(image: Image.Image) -> Image.Image:
    """A PIL image of any mode -> mode 'L', 'RGB' or 'F' (returned as is when it has one)."""
    try:
        return _MODES.get(image.mode, _convert("RGB"))(image)
    except (ValueError, OSError) as e:
        raise errors.ImageDecodeError(f"images of mode {image.mode!r} cannot be converted to gray or RGB ({e})") from e


def _convert(mode: str) -> Callable[[Image.Image], Image.Image]:
    return lambda image: image.convert(mode)


def _as_is(image: Image.Image) -> Image.Image:
    return image


def _palette(image: Image.Image) -> Image.Image:
    entries = np.asarray(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
    gray = bool((entries == entries[:, :1]).all())
    if "transparency" in image.info:
        image = image.convert("RGBA")  # the way Pillow wants transparency resolved; the alpha is dropped next
    return image.convert("L" if gray else "RGB")


def _sixteen_bit(image: Image.Image) -> Image.Image:
    values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
    return Image.fromarray(((values + 128) // 257).astype(np.uint8))  # round(v * 255 / 65535) in integers


_MODES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "L": _as_is,
    "RGB": _as_is,
    "F": _as_is,
    "1": _convert("L"),
    "LA": _convert("L"),
    "P": _palette,
    "PA": _palette,
    "I": _sixteen_bit,
    "I;16": _sixteen_bit,
    "I;16L": _sixteen_bit,
    "I;16B": _sixteen_bit,
    "I;16N": _sixteen_bit,
}
