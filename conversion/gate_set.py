"""The promotion gate set: a fixed, stratified sample of labelled MNIST test digits that ships
with the function app. Test digits are never used in training or model selection. Beside them,
`negatives`: NEGATIVES drawings that are not digits, from the held-out generator
(conversion/negatives.py: fonts and shapes training never sees) with a seed of their own,
prepared as the site prepares a drawing (uint8 (K, 28, 28), MNIST polarity). The gate refuses a
candidate that flags more than 1% of the digits or none of these.

    python -m conversion.gate_set --data ../shared/data/mnist.npz --out functions/model/gate_set.npz
"""

from __future__ import annotations

import argparse

import numpy as np

from conversion.data import load_mnist
from conversion.negatives import GATE_SEED, held_out_negatives

PER_DIGIT = 100
SEED = 20261127
NEGATIVES = 64


def sample_gate_set(x_test: np.ndarray, y_test: np.ndarray, per_digit: int = PER_DIGIT):
    rng = np.random.default_rng(SEED)
    chosen = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(y_test == digit), per_digit, replace=False)
                for digit in range(10)
            ]
        )
    )
    return x_test[chosen], y_test[chosen], chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="mnist.npz or IDX folder (default: $MNIST_PATH)")
    parser.add_argument("--out", default="functions/model/gate_set.npz")
    args = parser.parse_args()
    mnist = load_mnist(args.data)
    images, labels, indices = sample_gate_set(mnist.x_test, mnist.y_test)
    negatives = held_out_negatives(NEGATIVES, seed=GATE_SEED)
    np.savez_compressed(
        args.out, images=images, labels=labels, test_indices=indices, negatives=negatives
    )
    print(f"{len(labels)} gate digits and {len(negatives)} negatives -> {args.out}")


if __name__ == "__main__":
    main()
