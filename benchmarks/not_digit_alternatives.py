"""How well a model tells a digit from what is not one, by its own rule and by the alternative
issue #25 measured against it: a threshold on the confidence (the largest probability), set
where it flags 1% of the MNIST test digits. Fitted on the test set itself, that threshold is the
best case for the alternative. Measured on the held-out generator's
non-digits (conversion/negatives.py: fonts and shapes training never sees) and on MNIST test.

    git show 4169d36:functions/model/model.onnx > build/mnist-cnn-1.2.0.onnx
    MNIST_PATH=../shared/data/mnist.npz python -m benchmarks.not_digit_alternatives \\
        functions/model/model.onnx build/mnist-cnn-1.2.0.onnx      (about 10 s)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from conversion.data import load_mnist
from conversion.negatives import held_out_negatives
from functions.model_contract import digit_rule, open_session, run_inference

NEGATIVES = 1000
FLAGGED_DIGITS = 0.01


def answers(session, images: np.ndarray):
    batch = images.astype(np.float32).reshape(-1, 28, 28, 1)
    parts = [
        run_inference(session, batch[start : start + 1000]) for start in range(0, len(batch), 1000)
    ]
    not_digit = None if parts[0].not_digit is None else np.concatenate([p.not_digit for p in parts])
    return np.concatenate([p.probabilities for p in parts]), not_digit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", help="mnist.npz (default: $MNIST_PATH)")
    args = parser.parse_args()
    mnist = load_mnist(args.data)
    negatives = held_out_negatives(NEGATIVES)
    for path in args.models:
        content = path.read_bytes()
        session = open_session(content)
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        digits, negative = answers(session, mnist.x_test), answers(session, negatives)
        rule = digit_rule(metadata, [item.name for item in session.get_outputs()])
        print(f"{metadata.get('version', path)}:")
        if rule is not None:
            flagged_digits = np.mean(~rule.is_digit(*digits))
            flagged = np.mean(~rule.is_digit(*negative))
            print(
                f"  its rule `{rule}`: non-digits flagged {flagged:.1%}, "
                f"MNIST test digits flagged {flagged_digits:.2%}"
            )
        threshold = float(np.quantile(digits[0].max(axis=1), FLAGGED_DIGITS))
        flagged = np.mean(negative[0].max(axis=1) < threshold)
        print(
            f"  confidence >= {threshold:.3f} (flags {FLAGGED_DIGITS:.0%} of MNIST test): "
            f"non-digits flagged {flagged:.1%}"
        )


if __name__ == "__main__":
    main()
