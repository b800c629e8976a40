"""Seed 000's NNI model space, written for autonas (compare with the NNI original).

    autonas run --space examples/medmnist_cnn_space.py:CNNModelSpace --strategy darts

The convolution blocks are plain ``nn.Module``s (here the built-in ones; any module that
maps (C, 28, 28) to (32, 14, 14) can be a candidate). Written for 28 px images, like the
seed; the built-in ``--space medmnist-cnn`` also takes other sizes.
"""

import torch
import torch.nn.functional as F

from autonas.nn import LayerChoice, ModelSpace, MutableLinear, choice
from autonas.spaces.medmnist_cnn import (
    BiggerKernelBlock,
    Depth3ConvolutionBlock,
    Depth4ConvolutionBlock,
    SimpleConvolutionBlock,
)


class CNNModelSpace(ModelSpace):
    def __init__(self, input_channels=1, num_classes=2):
        super().__init__()

        self.convolution_block = LayerChoice([
            SimpleConvolutionBlock(input_channels=input_channels),
            BiggerKernelBlock(input_channels=input_channels),
            Depth3ConvolutionBlock(input_channels=input_channels),
            Depth4ConvolutionBlock(input_channels=input_channels)
        ], label='convolution_block')

        # Additionally we'll also test different widths of the fully connected layers
        # Due to DartStrategy being one-shot we won't be using Dropout,
        # instead we'll apply weight decay as regularization technique
        feature = choice('feature', [64, 128])
        self.fc1 = MutableLinear(32*14*14, feature)
        self.fc2 = MutableLinear(feature, num_classes)

    def forward(self, x):
        x = self.convolution_block(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
