"""Classifying a parsed request with the model being served."""

from __future__ import annotations

import logging
import time

import numpy as np

from functions.serving.inputs import PredictionInput
from functions.serving.loaded_model import LoadedModel

log = logging.getLogger(__name__)


def classify(model: LoadedModel, request: PredictionInput) -> dict[str, object]:
    probabilities = run_model(model, request.images)
    answers = _answers(probabilities)
    if request.batch:
        return {"predictions": answers, "model_version": model.version}
    return {**answers[0], "model_version": model.version}


def run_model(model: LoadedModel, images: np.ndarray) -> np.ndarray:
    """The model's (n, 10) probabilities for a batch, logged with the time it took."""
    started = time.perf_counter()
    probabilities = model.predict(images)
    latency_ms = (time.perf_counter() - started) * 1e3
    log.info(
        "predicted %d image(s) with %s in %.3f ms",
        len(probabilities),
        model.version,
        latency_ms,
        extra={
            "model_version": model.version,
            "batch_size": len(probabilities),
            "inference_ms": round(latency_ms, 3),
        },
    )
    return probabilities


def _answers(probabilities: np.ndarray) -> list[dict[str, object]]:
    """One answer per row, its probabilities rounded to 6 decimals."""
    if len(probabilities) == 1:
        # One image: ten Python floats cost less than numpy's fixed cost per call
        # (docs/benchmarks.md, in process). Equal to the batch's numpy rounding for float32
        # values: times 10**6 they are exact in float64, so both round the same exact number,
        # half to even.
        row = probabilities[0].tolist()
        return [_answer(row.index(max(row)), [round(value, 6) for value in row])]
    # A batch: rounded in one numpy call, as Python's round() value by value would cost as
    # much as the batch's inference. The rows stay numpy arrays; the JSON writer takes them.
    rounded = np.round(probabilities.astype(np.float64), 6)
    digits = np.argmax(probabilities, axis=1).tolist()
    return [_answer(digit, row) for digit, row in zip(digits, rounded, strict=True)]


def _answer(digit: int, rounded: list[float] | np.ndarray) -> dict[str, object]:
    return {"prediction": digit, "confidence": float(rounded[digit]), "probabilities": rounded}
