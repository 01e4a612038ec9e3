"""The model registry: one table of the HALCON networks, one way in (`create_network`).

Names are accepted as HALCON file names (`pretrained_dl_classifier_resnet18.hdl`) or short names
(`resnet18`), case-insensitively.
"""

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .alexnet import AlexNet
from .compact import Compact
from .enhanced import Enhanced
from .resnet import resnet18, resnet50

IMAGENET_CLASSES = 1000  # the built-in networks come with an ImageNet-sized output layer
HALCON_MAX_IMAGE_SIZE = 32768  # HALCON's largest image width/height (HALCON XL aside)


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[int, int, int, int], nn.Module]  # (classes, channels, width, height)
    min_size: int  # smallest image width/height the network accepts
    # Largest image width/height: HALCON's image limit where no weight depends on the image size;
    # with fully connected layers, a round size whose first such layer stays under 2**28 weights
    # (1 GiB), so that no setting can make building the network allocate without bound.
    max_size: int
    batch_size: int  # HALCON's default batch size for this network
    head: str  # state-dict prefix of the output layer, re-initialised when classes change
    first_conv: str  # state-dict key of the first convolution's weight
    description: str

    @property
    def halcon_file(self) -> str:
        return f"pretrained_dl_classifier_{self.name}.hdl"


ARCHITECTURES = {
    a.name: a
    for a in [
        Architecture("compact", Compact, 15, HALCON_MAX_IMAGE_SIZE, 160, "classifier.", "features.0.0.weight",
                     "fully convolutional, global pooling; memory and runtime efficient"),
        Architecture("enhanced", Enhanced, 47, 1024, 96, "classifier.4.", "features.0.weight",
                     "more hidden layers and fully connected layers; for harder tasks"),
        Architecture("resnet18", resnet18, 32, HALCON_MAX_IMAGE_SIZE, 24, "fc.", "conv1.weight",
                     "ResNet-18 (torchvision layout); like resnet50, faster"),
        Architecture("resnet50", resnet50, 32, HALCON_MAX_IMAGE_SIZE, 23, "fc.", "conv1.weight",
                     "ResNet-50 (torchvision layout); for complex tasks, stable training"),
        Architecture("alexnet", AlexNet, 63, 512, 32, "classifier.6.", "features.0.weight",
                     "AlexNet (torchvision layout), fully connected layers"),
    ]
}


def find_architecture(name: str) -> Architecture | None:
    """The architecture a built-in name stands for, or None if `name` is no built-in name."""
    key = str(name).strip().lower()
    for arch in ARCHITECTURES.values():
        if key in (arch.name, arch.halcon_file, arch.halcon_file.removesuffix(".hdl")):
            return arch
    return None


def create_network(arch: Architecture, num_classes: int, channels: int, width: int, height: int) -> nn.Module:
    return arch.build(num_classes, channels, width, height)
