"""An example data factory for `dataset: {factory: "digits_cnn_data.py:load_digits_images"}`.

scikit-learn's 1797 handwritten digits as 8x8 grey images with one channel.
"""

import numpy as np
from sklearn.datasets import load_digits


def load_digits_images():
    """X: (1797, 1, 8, 8) float32 in [0, 1]; y: (1797,) int64 digits 0-9."""
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # pixels are 0..16
    y = digits.target.astype(np.int64)
    return X, y
