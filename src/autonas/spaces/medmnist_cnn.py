"""The small CNN model space of seed 000 (NNI DARTS on BreastMNIST / PneumoniaMNIST).

One LayerChoice over four convolution blocks, each mapping (C, 28, 28) to (32, 14, 14),
then two fully connected layers whose shared width is ``choice('feature', [64, 128])``.
Seed 000 shows the names of all four blocks but the insides of one only:
SimpleConvolutionBlock is the seed's block as printed (conv 3x3, max-pool, conv 3x3,
ReLU after each conv). The insides of BiggerKernelBlock, Depth3ConvolutionBlock and
Depth4ConvolutionBlock are autonas's own reading of their names, designed to the same
output shape: 5x5 kernels, and three or four convolutions (with batch norm, which a
deeper plain stack needs to train reliably). Numbers from the seed's NNI runs are
therefore not from the very same space whenever one of those three blocks is involved.

Inputs other than 28 px: the block output is average-pooled to 14x14 before fc1, so the
network keeps the seed's 32*14*14 features and its size at any resolution (a 28 px
input is never pooled: identical to the seed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import register_space
from .model_space import LayerChoice, ModelSpace, MutableLinear, choice

FEATURE_SIZE = 14  # side of the block output for 28 px inputs


class SimpleConvolutionBlock(nn.Module):
    """As printed in seed 000."""

    def __init__(self, input_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        return F.relu(self.conv2(x))


class BiggerKernelBlock(nn.Module):
    """Insides not shown in seed 000: autonas's own reading of the name."""

    def __init__(self, input_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, 16, 5, padding=2)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        return F.relu(self.conv2(x))


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Depth3ConvolutionBlock(nn.Module):
    """Insides not shown in seed 000: autonas's own reading of the name."""

    def __init__(self, input_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(input_channels, 16)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = _conv_bn_relu(16, 32)
        self.conv3 = _conv_bn_relu(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.pool(self.conv1(x))))


class Depth4ConvolutionBlock(nn.Module):
    """Insides not shown in seed 000: autonas's own reading of the name."""

    def __init__(self, input_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(input_channels, 16)
        self.conv2 = _conv_bn_relu(16, 16)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv3 = _conv_bn_relu(16, 32)
        self.conv4 = _conv_bn_relu(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv4(self.conv3(self.pool(self.conv2(self.conv1(x)))))


@register_space("medmnist-cnn", "seed 000's CNN: a LayerChoice over four conv blocks and "
                "choice('feature', [64, 128]) for the fc width")
class CNNModelSpace(ModelSpace):
    def __init__(self, input_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.convolution_block = LayerChoice([
            SimpleConvolutionBlock(input_channels=input_channels),
            BiggerKernelBlock(input_channels=input_channels),
            Depth3ConvolutionBlock(input_channels=input_channels),
            Depth4ConvolutionBlock(input_channels=input_channels),
        ], label="convolution_block")
        # No dropout: DARTS is one-shot; weight decay regularises instead.
        feature = choice("feature", [64, 128])
        self.fc1 = MutableLinear(32 * FEATURE_SIZE * FEATURE_SIZE, feature)
        self.fc2 = MutableLinear(feature, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convolution_block(x)
        if x.shape[-2:] != (FEATURE_SIZE, FEATURE_SIZE):
            x = F.adaptive_avg_pool2d(x, FEATURE_SIZE)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
