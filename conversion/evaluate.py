"""Figures of a converted model on the MNIST test set: accuracy, per-class precision and recall,
the confusion matrix, file size and single-image latency."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from conversion.verify import onnx_predict, onnx_session
from functions.model_contract import INPUT_NAME, INPUT_SHAPE, session_options

LATENCY_RUNS = 2000


def evaluate(onnx_path: str | os.PathLike, x_test: np.ndarray, y_test: np.ndarray) -> dict:
    probabilities = onnx_predict(onnx_session(onnx_path), x_test)
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
    }


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
