"""MNIST test digits for the serving benchmarks: `MNIST_PATH`, else ../shared/data/mnist.npz."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("MNIST_PATH") or ROOT.parent / "shared" / "data" / "mnist.npz")


def digits(count: int) -> np.ndarray:
    """The first `count` test digits, uint8 [count, 28, 28]."""
    with np.load(MNIST) as archive:
        return archive["x_test"][:count]
