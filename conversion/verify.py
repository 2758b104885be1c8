"""The ONNX file must compute what the Keras model computes."""

from __future__ import annotations

import os

import keras
import numpy as np
import onnxruntime as ort

from functions.model_contract import INPUT_SHAPE, run_inference

MAX_PROBABILITY_DIFFERENCE = 1e-4


class VerificationError(Exception):
    """The ONNX model disagrees with the Keras model it was converted from."""


def onnx_session(path: str | os.PathLike) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predict(session: ort.InferenceSession, images: np.ndarray, batch: int = 1000):
    inputs = images.astype(np.float32).reshape(-1, *INPUT_SHAPE)
    parts = [run_inference(session, inputs[i : i + batch]) for i in range(0, len(inputs), batch)]
    return np.concatenate(parts)


def verify_against_keras(
    model: keras.Model, onnx_path: str | os.PathLike, images: np.ndarray
) -> dict[str, float | int]:
    """Compare on every image: the same argmax everywhere, probabilities within 1e-4."""
    expected = model.predict(images.astype(np.float32)[..., np.newaxis], batch_size=1000, verbose=0)
    actual = onnx_predict(onnx_session(onnx_path), images)
    disagreements = int(np.sum(expected.argmax(axis=1) != actual.argmax(axis=1)))
    max_difference = float(np.max(np.abs(expected - actual)))
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
