"""What every candidate is judged on, shipped with the app (made by `python -m
conversion.gate_set`): a fixed sample of labelled MNIST test digits, and a small set of images
that are no digit (letters, symbols, doodles from the held-out generator)."""

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
    negatives: np.ndarray  # (k, 28, 28, 1) float32, raw 0..255: no digit at all

    @property
    def tried(self) -> np.ndarray:
        """Every image a candidate's trial answers: the digits, then the negatives."""
        return np.concatenate([self.images, self.negatives])


@cache
def load_gate_set(path: Path = GATE_SET) -> GateSet:
    with np.load(path) as archive:
        return GateSet(
            images=_images(archive["images"]),
            labels=archive["labels"].astype(np.int64),
            negatives=_images(archive["negatives"]),
        )


def _images(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32).reshape(-1, 28, 28, 1)
