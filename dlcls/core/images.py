"""Images as the operators take them -> checked network batches (N x C x H x W float32 tensors).

Accepted: numpy arrays HxW (one gray image), HxWxC (one image), NxHxWxC (a batch), PIL images,
and lists of any of these. The operators want images already preprocessed to the network's
geometry and real (float) gray values, as HALCON does; preprocess_dl_classifier_images makes them.
"""

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .. import errors

_HINT = "preprocess them with preprocess_dl_classifier_images(images, handle)"


def image_list(images) -> list[np.ndarray]:
    """Every image as an HxWxC array (views, no copies)."""
    if isinstance(images, (list, tuple)):
        return [a for item in images for a in image_list(item)]
    if not isinstance(images, np.ndarray):
        images = _from_pil(images)
    if images.ndim == 2:
        return [images[:, :, None]]
    if images.ndim == 3:
        return [images]
    if images.ndim == 4:
        return list(images)
    raise errors.ImageTypeError(f"an image array must be HxW, HxWxC or NxHxWxC, got shape {images.shape}")


def _from_pil(image) -> np.ndarray:
    if not hasattr(image, "mode") or not hasattr(image, "getbands"):
        raise errors.ImageTypeError(f"images must be numpy arrays or PIL images, got {type(image).__name__}")
    if image.mode != "F":
        raise errors.ImageTypeError(f"a PIL image of mode {image.mode!r} has byte gray values, the network "
                                    f"needs real ones: {_HINT}")
    return np.asarray(image, dtype=np.float32)


def check_images(images: Sequence[np.ndarray], width: int, height: int, channels: int) -> None:
    """HALCON's checks of apply/train inputs: type real, finite, network width/height/channels."""
    if not images:
        raise errors.WrongParamValueError("no images given")
    for i, a in enumerate(images):
        if a.dtype.kind != "f":
            raise errors.ImageTypeError(f"image {i} has type {a.dtype}, the network needs real (float) images: {_HINT}")
        h, w, c = a.shape
        if w != width:
            raise errors.ImageWidthError(f"image {i} is {w} pixels wide, the network takes {width}: {_HINT}")
        if h != height:
            raise errors.ImageHeightError(f"image {i} is {h} pixels high, the network takes {height}: {_HINT}")
        if c != channels:
            raise errors.ChannelError(f"image {i} has {c} channel(s), the network takes {channels}: {_HINT}")
        if not np.isfinite(a).all():
            raise errors.UndefinedGrayValuesError(f"image {i} contains NaN or infinite gray values")


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """Checked HxWxC images -> one N x C x H x W float32 tensor."""
    return torch.from_numpy(np.stack(images).astype(np.float32, copy=False)).permute(0, 3, 1, 2).contiguous()


def chunks(images: Sequence[np.ndarray], size: int) -> Iterator[torch.Tensor]:
    """Network batches of at most `size` images, converted one at a time to bound memory."""
    for start in range(0, len(images), size):
        yield to_tensor(images[start : start + size])
