"""The promotion gate set: a fixed, stratified sample of labelled MNIST test digits that ships
with the function app. Test digits are never used in training or model selection.

    python -m conversion.gate_set --data ../shared/data/mnist.npz --out functions/model/gate_set.npz
"""

from __future__ import annotations

import argparse

import numpy as np

from conversion.data import load_mnist

PER_DIGIT = 100
SEED = 20261127


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
    np.savez_compressed(args.out, images=images, labels=labels, test_indices=indices)
    print(f"{len(labels)} gate digits -> {args.out}")


if __name__ == "__main__":
    main()
