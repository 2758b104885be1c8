"""Classifying a parsed request with the model being served."""

from __future__ import annotations

import logging
import time

import numpy as np

from functions.serving.inputs import PredictionInput
from functions.serving.loaded_model import LoadedModel

log = logging.getLogger(__name__)


def classify(model: LoadedModel, request: PredictionInput) -> dict[str, object]:
    started = time.perf_counter()
    probabilities = model.predict(request.images)
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
    answers = [_answer(row) for row in probabilities]
    if request.batch:
        return {"predictions": answers, "model_version": model.version}
    return {**answers[0], "model_version": model.version}


def _answer(row: np.ndarray) -> dict[str, object]:
    digit = int(np.argmax(row))
    return {
        "prediction": digit,
        "confidence": round(float(row[digit]), 6),
        "probabilities": [round(float(value), 6) for value in row],
    }
