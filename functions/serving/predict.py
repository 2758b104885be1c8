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
    answer = answers[0]
    answer["model_version"] = model.version
    return answer


def run_model(model: LoadedModel, images: np.ndarray) -> np.ndarray:
    """The model's (n, 10) probabilities for a batch, logged with the time it took."""
    started = time.perf_counter()
    probabilities = model.predict(images)
    latency_ms = (time.perf_counter() - started) * 1e3
    # round(x * 1e3) / 1e3, not round(x, 3): in the handler, with the CPU caches cold after an
    # inference, the latter's decimal conversion cost about 3 us more (docs/benchmarks.md).
    log.info(
        "predicted %d image(s) with %s in %.3f ms",
        len(probabilities),
        model.version,
        latency_ms,
        extra={
            "model_version": model.version,
            "batch_size": len(probabilities),
            "inference_ms": round(latency_ms * 1e3) / 1e3,
        },
    )
    return probabilities


def _answers(probabilities: np.ndarray) -> list[dict[str, object]]:
    """One answer per row, its probabilities rounded to 6 decimals half to even, as numpy's
    round does it: times 10**6, to the nearest integer, divided by 10**6. For float32 values the
    product is exact in float64, so each path rounds the same exact number (only the sign of a
    negative value rounded to zero differs, which no softmax gives). The rows were checked by
    `LoadedModel.predict`: finite probabilities, each row summing to 1."""
    if len(probabilities) == 1:
        # One image: ten Python floats cost less than numpy's fixed cost per call, and
        # round(x * 1e6) / 1e6 less than round(x, 6), whose decimal conversion is slow once an
        # inference has left the CPU caches cold (docs/benchmarks.md, in process).
        row = probabilities.tolist()[0]
        rounded = [round(value * 1e6) / 1e6 for value in row]
        return [_answer(row.index(max(row)), rounded)]
    # A batch: rounded in one numpy call, as Python's round() value by value would cost as
    # much as the batch's inference. The rows stay numpy arrays; the JSON writer takes them.
    rounded = np.round(probabilities.astype(np.float64), 6)
    digits = np.argmax(probabilities, axis=1).tolist()
    return [_answer(digit, row) for digit, row in zip(digits, rounded, strict=True)]


def _answer(digit: int, rounded: list[float] | np.ndarray) -> dict[str, object]:
    return {"prediction": digit, "confidence": float(rounded[digit]), "probabilities": rounded}
