"""'enhanced': a deeper convolutional network with fully connected layers, minimum input 47.

The first fully connected layer sees the flattened feature map, so its size follows the image
size: changing the image size re-initialises it and the network must be retrained (as HALCON).
"""

from torch import nn

from .shapes import flat_size


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _features(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, repeat in [(channels, 32, 1), (32, 64, 1), (64, 128, 2), (128, 256, 2), (256, 256, 2)]:
        for i in range(repeat):
            layers += _conv(cin if i == 0 else cout, cout)
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Enhanced(nn.Module):
    def __init__(self, num_classes: int, channels: int, width: int, height: int):
        super().__init__()
        flat = flat_size(lambda: _features(channels), channels, height, width)
        self.features = _features(channels)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(512, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
