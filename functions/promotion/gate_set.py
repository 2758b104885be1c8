"""The labelled digits every candidate is judged on: a fixed sample of MNIST test digits that
ships with the app (made by `python -m conversion.gate_set`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

GATE_SET = Path(__file__).resolve().parent.parent / "model" / "gate_set.npz"


@dataclass(frozen=True)
class GateSet:
    images: np.ndarray  # (n, 28, 28, 1) float32, raw 0..255
    labels: np.ndarray  # (n,)


@cache
def load_gate_set(path: Path = GATE_SET) -> GateSet:
    with np.load(path) as archive:
        images = archive["images"].astype(np.float32).reshape(-1, 28, 28, 1)
        return GateSet(images=images, labels=archive["labels"].astype(np.int64))
