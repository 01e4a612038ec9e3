"""dev_display_dl_classifier_heatmap: which part of an image decides the classifier's answer.

'occlusion' (HALCON's method): a square of side feature_size, filled with 0 (mid-gray of the
network range [-127, 128]; HALCON does not document its fill), is slid over the image with stride
sampling_size; every pixel gets the mean drop of the target class's confidence over the squares
covering it. The last row and column of squares are moved flush with the image border, so every
pixel is covered. 'grad_cam': ReLU of the activations of a convolution layer weighted by the
spatial mean of the target score's gradients, bilinearly upsampled and scaled to [0, 1].
"""

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image
from torch import nn

from .. import errors
from ..core import images as img
from ..core.metrics import top1
from ..core.predict import predict
from ..operators import get_dl_classifier_param
from . import display
from .genparams import GenParam, anything, int_at_least, one_of, parse

OCCLUSION_FILL = 0.0
_PARAMS = {
    "feature_size": GenParam(30, int_at_least(1)),
    "sampling_size": GenParam(10, int_at_least(1)),
    "target_class": GenParam(None, anything),  # a class name or index; None: top-1 of the image
    "method": GenParam("occlusion", one_of("occlusion", "grad_cam")),
    "target_conv_layer": GenParam(None, anything),  # a Conv2d's name in network.named_modules(); None: the last
}
_MIN_DISPLAY_SIDE = 256  # small network inputs are enlarged in the PNG so that they can be seen


def dev_display_dl_classifier_heatmap(image, handle, gen_param_name=(), gen_param_value=(), output=None) -> np.ndarray:
    """The H x W float32 heatmap of one preprocessed image (H x W x C, network geometry): for
    'occlusion' the mean confidence drop per pixel, for 'grad_cam' values in [0, 1]. With `output`
    (.png path or URL), also the heatmap in jet colours blended 50 % over the image."""
    settings = parse(gen_param_name, gen_param_value, _PARAMS)
    if output is not None:
        display.check_output(output)
    classes = get_dl_classifier_param(handle, "classes")
    image = _checked_image(image, handle, classes)
    predict_fn = predictor(handle)
    target = _target_class(settings["target_class"], classes, image, predict_fn)
    heatmap = _METHODS[settings["method"]](image, handle, target, settings, predict_fn)
    if output is not None:
        image_range = [get_dl_classifier_param(handle, n) for n in ("image_range_min", "image_range_max")]
        display.write(output, display.image_png(overlay(image, heatmap, image_range)))
    return heatmap


def _occlusion(image: np.ndarray, handle, target: int, settings: dict, predict_fn: Callable) -> np.ndarray:
    return occlusion_heatmap(image, predict_fn, target, settings["feature_size"], settings["sampling_size"],
                             get_dl_classifier_param(handle, "batch_size"))


def _grad_cam(image: np.ndarray, handle, target: int, settings: dict, predict_fn: Callable) -> np.ndarray:
    layer = conv_layer(handle.network, settings["target_conv_layer"])
    return grad_cam_heatmap(handle.network, img.to_tensor([image]).to(handle.device), target, layer)


def _checked_image(image, handle, classes: list) -> np.ndarray:
    if not classes:
        raise errors.ClassesNotSetError("set the classes first: set_dl_classifier_param(handle, 'classes', [...])")
    images = img.image_list(image)
    if len(images) != 1:
        raise errors.WrongParamValueError(f"the heatmap is of one image, got {len(images)}: pass one H x W x C image")
    img.check_images(images, *handle.geometry)
    return images[0]


def predictor(handle) -> Callable[[np.ndarray], np.ndarray]:
    """N x H x W x C images -> N x classes confidences, through the same predict as apply."""
    network, device = handle.network, handle.device
    return lambda batch: predict(network, img.to_tensor(batch), device)


def _target_class(value, classes: list[str], image: np.ndarray, predict_fn: Callable) -> int:
    if value is None:
        return int(top1(predict_fn(image[None]))[0])
    if isinstance(value, str) and value in classes:
        return classes.index(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < len(classes):
        return int(value)
    raise errors.WrongParamValueError(
        f"'target_class' {value!r} is neither one of the classes {classes} nor an index 0..{len(classes) - 1}")


# -- occlusion ------------------------------------------------------------------------------

def occlusion_heatmap(image: np.ndarray, predict_fn: Callable[[np.ndarray], np.ndarray], target: int,
                      feature_size: int, sampling_size: int, batch_size: int,
                      fill: float = OCCLUSION_FILL) -> np.ndarray:
    """H x W mean drop of confidence[target] over the occluding squares that cover each pixel;
    `predict_fn` maps N x H x W x C images to N x classes confidences."""
    height, width = image.shape[:2]
    size = min(feature_size, height, width)
    corners = [(y, x) for y in _starts(height, size, sampling_size) for x in _starts(width, size, sampling_size)]
    base = predict_fn(image[None])[0, target]
    scores = [predict_fn(_occluded(image, corners[i : i + batch_size], size, fill))[:, target]
              for i in range(0, len(corners), batch_size)]
    total, count = np.zeros((height, width)), np.zeros((height, width))
    for (y, x), drop in zip(corners, base - np.concatenate(scores)):
        total[y : y + size, x : x + size] += drop
        count[y : y + size, x : x + size] += 1
    return (total / count).astype(np.float32)


def _starts(length: int, size: int, stride: int) -> list[int]:
    starts = list(range(0, length - size + 1, stride))
    return starts if starts[-1] == length - size else [*starts, length - size]


def _occluded(image: np.ndarray, corners: list[tuple[int, int]], size: int, fill: float) -> np.ndarray:
    batch = np.repeat(image[None], len(corners), axis=0)
    for k, (y, x) in enumerate(corners):
        batch[k, y : y + size, x : x + size] = fill
    return batch


# -- Grad-CAM -------------------------------------------------------------------------------

def conv_layer(network: nn.Module, name) -> nn.Module:
    """The Conv2d called `name` in network.named_modules(), or the last one for None."""
    convs = {n: m for n, m in network.named_modules() if isinstance(m, nn.Conv2d)}
    if not convs:
        raise errors.WrongParamValueError("the network has no Conv2d layer for 'grad_cam'; use method 'occlusion'")
    if name is None:
        return list(convs.values())[-1]
    if name not in convs:
        raise errors.WrongParamValueError(f"'target_conv_layer' {name!r} is not a Conv2d of the network; "
                                          f"its Conv2d layers are {list(convs)}")
    return convs[name]


def grad_cam_heatmap(network: nn.Module, batch: torch.Tensor, target: int, layer: nn.Module) -> np.ndarray:
    """Grad-CAM of a 1 x C x H x W batch for class `target` at `layer`, H x W in [0, 1]."""
    captured = []
    hook = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        network.eval()
        with torch.enable_grad():
            scores = network(batch.detach().requires_grad_(True))  # so that frozen weights still give gradients
            (gradients,) = torch.autograd.grad(scores[0, target], captured[0])
    finally:
        hook.remove()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * captured[0].detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(batch.shape[2:]), mode="bilinear", align_corners=False)
    return unit_range(cam[0, 0].float().cpu().numpy())


_METHODS = {"occlusion": _occlusion, "grad_cam": _grad_cam}


def unit_range(values: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] (all zeros when constant)."""
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return scaled.astype(np.float32)


def overlay(image: np.ndarray, heatmap: np.ndarray, image_range) -> Image.Image:
    """The heatmap (scaled to [0, 1]) in jet colours, blended 50 % over the image."""
    base = display.to_pil(image, image_range).convert("RGB")
    colours = colormaps["jet"](unit_range(heatmap))[..., :3]
    blended = Image.blend(base, Image.fromarray(np.rint(colours * 255).astype(np.uint8)), 0.5)
    scale = max(1, math.ceil(_MIN_DISPLAY_SIDE / min(blended.size)))
    return blended.resize((blended.width * scale, blended.height * scale), Image.Resampling.NEAREST)
