"""'compact': a small fully convolutional network, global average pooling, minimum input 15.

Four stride-2 stages take a 15x15 input down to 1x1, which is where the minimum size comes from.
Without fully connected layers it can be applied to any size >= 15 without changing weights.
"""

from torch import nn


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Compact(nn.Module):
    def __init__(self, num_classes: int, channels: int, width: int, height: int):
        super().__init__()
        widths = [channels, 32, 64, 128, 256]
        self.features = nn.Sequential(*[_stage(a, b) for a, b in zip(widths, widths[1:])])
        self.classifier = nn.Conv2d(widths[-1], num_classes, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):  # x: N x C x H x W in the network's gray range
        return self.pool(self.classifier(self.features(x))).flatten(1)  # N x classes
