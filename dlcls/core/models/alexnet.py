"""'alexnet': AlexNet with torchvision's module names (so torchvision weights import), but the
classifier takes the flattened feature map directly, as HALCON's: a size change re-initialises
the first fully connected layer. At 224x224 the shapes equal torchvision's exactly.

Minimum input 63: the smallest size for which the three max-poolings still get a 3x3 window
(HALCON's table lists 29, unconfirmed; 63 is what this layout needs).
"""

from torch import nn

from .shapes import flat_size


def _features(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, 64, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )


class AlexNet(nn.Module):
    def __init__(self, num_classes: int, channels: int, width: int, height: int):
        super().__init__()
        flat = flat_size(lambda: _features(channels), channels, height, width)
        self.features = _features(channels)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(flat, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))
