"""An example model factory for `model: {factory: "digits_cnn_model.py:make_cnn"}`.

The sweep calls it as make_cnn(input_shape=(1, 8, 8), n_outputs=10, **model kwargs).
"""

from torch import nn


def make_cnn(input_shape, n_outputs, channels=8):
    """A small CNN: one convolution, ReLU, 2x2 max-pooling, then a linear layer of logits."""
    in_channels, height, width = input_shape
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(channels * (height // 2) * (width // 2), n_outputs),
    )
