"""Image arrays -> network input: the one preprocessing behind the local procedure, the Ray batch
jobs and the Serve replicas (HALCON's preprocess_dl_classifier_images, on numpy arrays).

The steps: crop to the domain box, resize to the network size, contrast normalisation, channel
conversion, then byte -> network range. On byte images the first four are `to_network_bytes`
(uint8 at network size: what the Ray pipeline stores) and the last is `to_network_range`;
`preprocess_arrays` is exactly their composition.

One documented deviation from HALCON's order: HALCON converts byte -> real (its step 4) before
the channels (step 5); dlcls converts the channels of byte images while they are still bytes.
That keeps everything before the range conversion one uint8 function (`to_network_bytes`,
`encoded_to_network_bytes`), which the Ray shards store and offline classify and Serve apply, so
every path gives pixels identical to the local procedure. It changes nothing for 1 -> 3 channels
(replicating commutes with the linear range map); for 3 -> 1 on byte images the luminance is
rounded to a whole gray level where HALCON keeps it unrounded: at most 0.5 gray level apart, i.e.
0.5 * (range_max - range_min) / 255 in the network range. Real images are not rounded.

Choices:
- resize: HALCON resizes all images when any one differs from the network size. Resizing an image
  to its own size is the identity, so deciding image by image gives the same result. Pillow's
  bilinear filter (reducing_gap=None: exact, and area-averaging when shrinking, close to HALCON's
  'constant' zoom) on uint8 for byte images, on float32 for real ones; the aspect ratio is not kept.
- contrast normalisation: min and max over the whole image (all channels together, so hues stay)
  stretched to [0, 255] (rounded) for byte images and to [range_min, range_max] for real ones; a
  constant image is left as it is.
- 3 -> 1 channel: 0.299 R + 0.587 G + 0.114 B (rounded for byte images, see above); 1 -> 3 replicates.
- real images are assumed to be in the network range already and are not rescaled.
- domain boxes are (x0, y0, x1, y1) in pixels with x1, y1 exclusive (Pillow's crop box).
"""

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from .. import errors
from . import decode

Box = tuple[int, int, int, int]
_MISSING = object()
_PIL_KINDS = {"L": "byte", "RGB": "byte", "F": "real"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_HINT = {
    "u": "scale it to 8 bit (e.g. (image >> 8).astype(np.uint8) for 16-bit data) or convert it to float32 "
         "values in the network range",
    "i": "convert it with .astype(np.uint8) if it holds 0..255 gray values, else to float32 in the network range",
    "b": "convert it with .astype(np.uint8) * 255",
    "f": "real (float) images stay real: preprocess them with preprocess_arrays",
}


def preprocess_arrays(images, width: int, height: int, channels: int, range_min: float, range_max: float,
                      contrast_normalization: bool = False, domain: Sequence[Box | None] | None = None) -> np.ndarray:
    """Images -> float32 N x height x width x channels in [range_min, range_max].

    `images`: an HxW, HxWxC or NxHxWxC array, or any iterable (a generator too: images are taken
    one at a time) of arrays and PIL images of mode 'L', 'RGB' or 'F'; all byte (uint8) or all real
    (float). `domain`: one box or None per image, to crop to before anything else."""
    kind, out = None, []
    for image, box in _with_boxes(_image_iter(images), domain):
        kind = _same_kind(kind, image, len(out))
        if kind == "byte":
            out.append(to_network_bytes(image, width, height, channels, contrast_normalization, box))
        else:
            stretch = (range_min, range_max) if contrast_normalization else None
            out.append(_to_network(image, width, height, channels, stretch, box))
    if not out:
        return np.empty((0, height, width, channels), np.float32)
    batch = np.stack(out)
    return to_network_range(batch, range_min, range_max) if kind == "byte" else batch.astype(np.float32, copy=False)


def to_network_bytes(image, width: int, height: int, channels: int,
                     contrast_normalization: bool = False, box: Box | None = None) -> np.ndarray:
    """One byte image (HxW or HxWxC uint8 array, or PIL image of mode 'L' or 'RGB') -> uint8
    height x width x channels. May return the input array itself when it already fits."""
    if _kind_of(image) != "byte":
        raise errors.ImageTypeError(f"to_network_bytes takes byte images, got {_describe(image)}; {_hint(image)}")
    return _to_network(image, width, height, channels, (0, 255) if contrast_normalization else None, box)


def encoded_to_network_bytes(data: bytes, width: int, height: int, channels: int, contrast_normalization: bool = False,
                             max_pixels: int = decode.DEFAULT_MAX_PIXELS, jpeg_draft: bool = True) -> np.ndarray:
    """An image file's bytes -> uint8 height x width x channels: for a byte image exactly the pixels
    preprocess_dl_classifier_images gives for that file, before the conversion to the network range."""
    image = decode.decode_pil(data, max_pixels, (width, height) if jpeg_draft else None)
    return np.ascontiguousarray(to_network_bytes(image, width, height, channels, contrast_normalization))


def to_network_range(images: np.ndarray, range_min: float, range_max: float) -> np.ndarray:
    """uint8 gray values g (any shape) -> float32 g * (range_max - range_min) / 255 + range_min."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise errors.ImageTypeError(f"to_network_range takes uint8 images, got {images.dtype}")
    # Each of the 256 values correctly rounded from float64; every path gives bit-identical results.
    table = (np.arange(256) * ((range_max - range_min) / 255) + range_min).astype(np.float32)
    scale, offset = np.float32((range_max - range_min) / 255), np.float32(range_min)
    if not np.array_equal(np.arange(256, dtype=np.float32) * scale + offset, table):
        return table[images]
    out = images.astype(np.float32)  # float32 multiply-add gives the table's values here, 2-3x faster than a lookup
    out *= scale
    out += offset
    return out


def resize(image, width: int, height: int) -> np.ndarray:
    """HxWxC uint8 (C = 1 or 3) or float array, or a PIL image -> height x width x C array,
    Pillow bilinear."""
    if isinstance(image, Image.Image):
        return _as_hwc(_pil_resize(image, width, height))
    if image.shape[1] == width and image.shape[0] == height:
        return image
    if image.dtype == np.uint8 and image.shape[2] in (1, 3):
        plane = image[:, :, 0] if image.shape[2] == 1 else image
        return _as_hwc(_pil_resize(Image.fromarray(plane), width, height))
    planes = [_pil_resize(Image.fromarray(image[:, :, k].astype(np.float32)), width, height)
              for k in range(image.shape[2])]
    return np.stack(planes, axis=2)


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """HxWxC -> HxWx`channels`: 1 -> 3 replicates the gray channel, 3 -> 1 takes the luminance."""
    have = image.shape[2]
    if have == channels:
        return image
    if (have, channels) == (1, 3):
        return np.repeat(image, 3, axis=2)
    if (have, channels) == (3, 1):
        return _luminance(image)
    raise errors.ChannelError(f"cannot convert an image with {have} channel(s) to {channels}; images need 1 or 3")


def _to_network(image, width: int, height: int, channels: int,
                stretch: tuple[float, float] | None, box: Box | None) -> np.ndarray:
    image = _crop(_as_hwc(image), box)
    if not isinstance(image, Image.Image):
        _check_channels(image)
    image = resize(image, width, height)
    if stretch is not None:
        image = _stretch(image, *stretch)
    return convert_channels(image, channels)


def _pil_resize(image: Image.Image, width: int, height: int) -> np.ndarray:
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(image)


def _stretch(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map of the image's [min, max] onto [low, high]."""
    lo, hi = float(image.min()), float(image.max())
    if hi == lo:
        return image
    scaled = (image.astype(np.float32) - np.float32(lo)) * np.float32((high - low) / (hi - lo)) + np.float32(low)
    return _round_like(scaled, image.dtype)


def _luminance(image: np.ndarray) -> np.ndarray:
    gray = image.astype(np.float32, copy=False) @ _LUMA
    return _round_like(gray, image.dtype)[:, :, None]


def _round_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)
    return values


def _crop(image, box: Box | None):
    if box is None:
        return image
    width, height = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
    try:
        x0, y0, x1, y1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise errors.WrongParamValueError(f"a domain box is (x0, y0, x1, y1), got {box!r}") from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise errors.WrongParamValueError(f"domain box {box!r} is empty or leaves the {width}x{height} image; "
                                          "give 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height (x1, y1 exclusive)")
    if isinstance(image, Image.Image):
        # Sliced as an array: Image.crop applies Pillow's global pixel limit, which max_pixels replaces.
        image = _as_hwc(np.asarray(image))
    return image[y0:y1, x0:x1]


def _check_channels(image: np.ndarray) -> None:
    have = image.shape[2]
    if have not in (1, 3):
        fix = "drop the alpha channel with image[..., :3]" if have == 4 else "pass gray (1) or RGB (3) images"
        raise errors.ChannelError(f"an image has {have} channels; preprocessing takes 1 or 3: {fix}")


def _image_iter(images) -> Iterator:
    if isinstance(images, np.ndarray):
        return iter(images) if images.ndim == 4 else iter([images])
    return iter([images]) if isinstance(images, Image.Image) else iter(images)


def _with_boxes(images: Iterator, domain) -> Iterator[tuple]:
    if domain is None:
        yield from ((image, None) for image in images)
        return
    boxes = list(domain)
    for image, box in itertools.zip_longest(images, boxes, fillvalue=_MISSING):
        if image is _MISSING or box is _MISSING:
            raise errors.WrongParamValueError(f"got {len(boxes)} domain boxes for a different number of images; "
                                              "give one per image (None for the full image)")
        yield image, box


def domain_boxes(domain, count: int) -> list:
    """One box or None per image, checked for count; None stands for all full images."""
    if domain is None:
        return [None] * count
    boxes = list(domain)
    if len(boxes) != count:
        raise errors.WrongParamValueError(f"got {len(boxes)} domain boxes for {count} images; give one per image "
                                          "(None for the full image)")
    return boxes


def _as_hwc(image) -> np.ndarray | Image.Image:
    if isinstance(image, Image.Image):
        return image
    image = np.asarray(image)
    if image.ndim == 2:
        return image[:, :, None]
    if image.ndim != 3:
        raise errors.ImageTypeError(f"an image must be HxW or HxWxC, got shape {image.shape}")
    return image


def _same_kind(kind: str | None, image, index: int) -> str:
    """The kind of the call ('byte' or 'real'): HALCON takes only these, and not mixed."""
    this = _kind_of(image)
    if this is None:
        raise errors.ImageTypeError(f"image {index} is {_describe(image)}; images must be uint8 (byte) or float "
                                    f"(real): {_hint(image)}")
    if kind is not None and this != kind:
        raise errors.ImageTypeError(f"image {index} is {this} but the images before it are {kind}: byte (uint8) and "
                                    "real (float) images cannot be mixed in one call; convert them to one type")
    return this


def _kind_of(image) -> str | None:
    if isinstance(image, Image.Image):
        return _PIL_KINDS.get(image.mode)
    dtype = np.asarray(image).dtype
    return "byte" if dtype == np.uint8 else "real" if dtype.kind == "f" else None


def _describe(image) -> str:
    if isinstance(image, Image.Image):
        return f"a PIL image of mode {image.mode!r}"
    return f"an array of type {np.asarray(image).dtype}"


def _hint(image) -> str:
    if isinstance(image, Image.Image):
        return "convert it with dlcls.core.decode.normalize_mode(image)"
    return _HINT.get(np.asarray(image).dtype.kind, "convert it to uint8 or to float32 values in the network range")
