"""Figures of a converted model on the MNIST test set: accuracy, per-class precision and recall,
the confusion matrix, file size and single-image latency."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from conversion.verify import onnx_outputs, onnx_session
from functions.model_contract import (
    INPUT_NAME,
    INPUT_SHAPE,
    DigitRule,
    ModelOutputs,
    session_options,
)

LATENCY_RUNS = 2000
CALIBRATION_BINS = 15


def evaluate(
    onnx_path: str | os.PathLike,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    rule: DigitRule | None = None,
    negatives: np.ndarray | None = None,
    pen: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """The figures of the model at `onnx_path`. With `negatives` (held-out non-digits) and `pen`
    (MNIST test digits redrawn with the site's pen, and their labels), also what its `rule`
    flags as not a digit (a model without a rule flags nothing) and its calibration."""
    session = onnx_session(onnx_path)
    outputs = onnx_outputs(session, x_test)
    probabilities = outputs.probabilities
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_test, predictions)
    true_positives = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    actual = matrix.sum(axis=1).astype(float)
    return {
        "test_images": len(y_test),
        "test_accuracy": float(true_positives.sum() / len(y_test)),
        "errors": int(len(y_test) - true_positives.sum()),
        "per_class": {
            str(digit): {
                "precision": _ratio(true_positives[digit], predicted[digit]),
                "recall": _ratio(true_positives[digit], actual[digit]),
                "support": int(actual[digit]),
            }
            for digit in range(10)
        },
        "confusion_matrix": matrix.tolist(),  # rows: true digit, columns: predicted digit
        "file_size_bytes": Path(onnx_path).stat().st_size,
        "latency": measure_latency(onnx_path, x_test[0]),
        "not_digit": not_digit_figures(session, outputs, y_test, rule, negatives, pen),
    }


def flagged(rule: DigitRule | None, outputs: ModelOutputs) -> np.ndarray:
    """One bool per image: True where the model's rule says it is not a digit."""
    if rule is None:
        return np.zeros(len(outputs.probabilities), dtype=bool)
    return ~rule.is_digit(outputs.probabilities, outputs.not_digit)


def not_digit_figures(  # noqa: PLR0917 - the figures' inputs, each named at the one call
    session,
    test: ModelOutputs,
    y_test: np.ndarray,
    rule: DigitRule | None,
    negatives: np.ndarray | None,
    pen: tuple[np.ndarray, np.ndarray] | None,
) -> dict:
    """Held-out negatives flagged; MNIST test digits flagged (false alarms), accuracy on those
    kept, calibration (expected calibration error of the top digit's probability); the same on
    the pen-drawn digits, where a flagged digit counts as wrong."""
    test_flagged = flagged(rule, test)
    right = test.probabilities.argmax(axis=1) == y_test
    kept = ~test_flagged
    figures: dict[str, object] = {
        "rule": None if rule is None else str(rule),
        "test_digits_flagged": int(test_flagged.sum()),
        "test_flagged_share": float(test_flagged.mean()),
        "kept_accuracy": float(right[kept].mean()) if kept.any() else 0.0,
        "test_ece": expected_calibration_error(test.probabilities, y_test),
        "calibration_bins": CALIBRATION_BINS,
    }
    if negatives is not None and len(negatives):
        negative_outputs = onnx_outputs(session, negatives)
        negatives_flagged = flagged(rule, negative_outputs)
        figures["held_out_negatives"] = len(negatives)
        figures["held_out_negatives_flagged"] = int(negatives_flagged.sum())
        figures["held_out_flagged_share"] = float(negatives_flagged.mean())
    if pen is not None and len(pen[1]):
        pen_images, pen_labels = pen
        pen_outputs = onnx_outputs(session, pen_images)
        pen_flagged = flagged(rule, pen_outputs)
        pen_right = pen_outputs.probabilities.argmax(axis=1) == pen_labels
        figures["pen_digits"] = len(pen_labels)
        figures["pen_flagged_share"] = float(pen_flagged.mean())
        figures["pen_accuracy"] = float(np.mean(pen_right & ~pen_flagged))  # flagged = wrong
        figures["pen_ece"] = expected_calibration_error(pen_outputs.probabilities, pen_labels)
    return figures


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """The top digit's probability against how often it is right, in `bins` equal-width bins
    of that probability, weighted by the images in each."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            gap = abs(float(confidence[members].mean()) - float(right[members].mean()))
            error += members.mean() * gap
    return float(error)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (labels.astype(int), predictions.astype(int)), 1)
    return matrix


def measure_latency(onnx_path: str | os.PathLike, image: np.ndarray) -> dict:
    """Median and p99 of single-image inference with the app's own session options."""
    session = ort.InferenceSession(
        str(onnx_path), session_options(), providers=["CPUExecutionProvider"]
    )
    feed = {INPUT_NAME: image.astype(np.float32).reshape(1, *INPUT_SHAPE)}
    for _ in range(200):
        session.run(None, feed)
    timings = np.empty(LATENCY_RUNS)
    for run in range(LATENCY_RUNS):
        start = time.perf_counter()
        session.run(None, feed)
        timings[run] = time.perf_counter() - start
    return {
        "runs": LATENCY_RUNS,
        "threads": 1,
        "median_ms": float(np.median(timings) * 1e3),
        "p99_ms": float(np.percentile(timings, 99) * 1e3),
    }


def plot_confusion_matrix(matrix: list[list[int]], path: str | os.PathLike, title: str) -> None:
    import matplotlib  # noqa: PLC0415 - plotting is only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    counts = np.asarray(matrix)
    figure, axes = plt.subplots(figsize=(7, 6), dpi=120)
    # A log-like scale keeps the few errors visible beside the large diagonal.
    image = axes.imshow(np.log1p(counts), cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        if count:
            colour = "white" if row == column else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    axes.set_xticks(range(10))
    axes.set_yticks(range(10))
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="log(1 + count)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0
