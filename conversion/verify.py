"""The ONNX file must compute what the Keras model computes."""

from __future__ import annotations

import os

import keras
import numpy as np
import onnxruntime as ort

from conversion.network import NOT_DIGIT_CLASS
from functions.model_contract import INPUT_SHAPE, ModelOutputs, run_inference

MAX_PROBABILITY_DIFFERENCE = 1e-4


class VerificationError(Exception):
    """The ONNX model disagrees with the Keras model it was converted from."""


def onnx_session(path: str | os.PathLike) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_outputs(
    session: ort.InferenceSession, images: np.ndarray, batch: int = 1000
) -> ModelOutputs:
    """Both outputs for every image (`not_digit` None for a model without it)."""
    inputs = images.astype(np.float32).reshape(-1, *INPUT_SHAPE)
    parts = [run_inference(session, inputs[i : i + batch]) for i in range(0, len(inputs), batch)]
    probabilities = np.concatenate([part.probabilities for part in parts])
    if parts and parts[0].not_digit is not None:
        return ModelOutputs(probabilities, np.concatenate([part.not_digit for part in parts]))
    return ModelOutputs(probabilities, None)


def keras_outputs(model: keras.Model, images: np.ndarray) -> ModelOutputs:
    """What the ONNX file must answer, from the Keras model: for a model with the eleventh
    class, its first ten probabilities renormalised and the eleventh."""
    scores = model.predict(images.astype(np.float32)[..., np.newaxis], batch_size=1000, verbose=0)
    if scores.shape[1] == NOT_DIGIT_CLASS:
        return ModelOutputs(scores, None)
    scores = scores.astype(np.float64)
    digits = scores[:, :NOT_DIGIT_CLASS]
    totals = digits.sum(axis=1, keepdims=True)
    return ModelOutputs(digits / totals, scores[:, NOT_DIGIT_CLASS])


def verify_against_keras(
    model: keras.Model, onnx_path: str | os.PathLike, images: np.ndarray
) -> dict[str, float | int]:
    """Compare on every image: the same argmax everywhere, probabilities within 1e-4."""
    expected_outputs = keras_outputs(model, images)
    actual_outputs = onnx_outputs(onnx_session(onnx_path), images)
    expected, actual = expected_outputs.probabilities, actual_outputs.probabilities
    disagreements = int(np.sum(expected.argmax(axis=1) != actual.argmax(axis=1)))
    max_difference = float(np.max(np.abs(expected - actual)))
    if (expected_outputs.not_digit is None) != (actual_outputs.not_digit is None):
        raise VerificationError(
            "ONNX disagrees with Keras: one has the not_digit output and the other has not"
        )
    if expected_outputs.not_digit is not None:
        max_difference = max(
            max_difference,
            float(np.max(np.abs(expected_outputs.not_digit - actual_outputs.not_digit))),
        )
    summary = {
        "images": len(images),
        "argmax_disagreements": disagreements,
        "max_probability_difference": max_difference,
    }
    if disagreements or max_difference > MAX_PROBABILITY_DIFFERENCE:
        raise VerificationError(
            f"ONNX disagrees with Keras on {disagreements} of {len(images)} images; "
            f"largest probability difference {max_difference:.2e} "
            f"(allowed {MAX_PROBABILITY_DIFFERENCE:.0e})"
        )
    return summary
