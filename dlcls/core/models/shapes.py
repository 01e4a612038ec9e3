"""Shape arithmetic for networks whose fully connected input depends on the image size."""

from collections.abc import Callable

import torch
from torch import nn


def flat_size(build: Callable[[], nn.Module], channels: int, height: int, width: int) -> int:
    """Number of features `build()` yields for one image, computed on the meta device (no data,
    no random numbers drawn)."""
    with torch.device("meta"):
        return build()(torch.zeros(1, channels, height, width)).numel()
