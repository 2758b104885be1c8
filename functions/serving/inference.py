"""The one inference every protocol goes through: a batch of decoded images in, `Predictions`
out, with each invariant checked on the way. The codecs in `functions/api/` turn bytes and
headers into the images and these predictions back into their own answers; serving knows no
HTTP.

The invariants:
- the images: float32, shape (n, 28, 28, 1) with 1 <= n <= MAX_BATCH, checked here (a codec's
  bug is a ValueError, a 500, and never a run that counts against the model). Their values,
  finite and 0..255, are the codecs' to check, in the one check they share
  (`checked_pixels` in functions/api/pixels.py) or by construction (whole numbers, pictures):
  they say where a wrong value is, which this cannot;
- the answer: one row of 10 probabilities per image, each value finite and in [0, 1], each row
  summing to 1, and one not_digit in [0, 1] per image where the model has that output
  (`LoadedModel.predict`, against the model contract); whether each image is a digit, by the
  rule the model declares (`LoadedModel.is_digit`), and never for an image without ink; a run
  past its bound, or one that onnxruntime failed, is an error too, never an answer;
- the version: that of the model that ran, which the caller takes once for the whole request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from functions.model_contract import INPUT_SHAPE, MAX_BATCH
from functions.serving.loaded_model import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Predictions:
    """What the model answered for a batch: per image (one entry each, in the batch's order)
    its digit and its probabilities. A new per-image answer is one more field here, filled in
    `infer`."""

    version: str  # the version of the model that answered
    digits: np.ndarray  # (n,) int64: each image's most probable digit
    probabilities: np.ndarray  # (n, 10) float32: checked against the model contract
    is_digit: np.ndarray  # (n,) bool: whether the image is a digit, by the model's own rule


def infer(model: LoadedModel, images: np.ndarray) -> Predictions:
    """The predictions of `model` for `images` ((n, 28, 28, 1) float32, raw ink 0..255).
    ValueError for a batch of another type or shape (a codec's bug); the model's failures as
    `LoadedModel.predict` raises them."""
    check_images(images)
    started = time.perf_counter()
    outputs = model.predict(images)
    latency_ms = (time.perf_counter() - started) * 1e3
    log.info(
        "predicted %d image(s) with %s in %.3f ms",
        len(images),
        model.version,
        latency_ms,
        extra={
            "model_version": model.version,
            "batch_size": len(images),
            "inference_ms": round(latency_ms, 3),
        },
    )
    return Predictions(
        version=model.version,
        digits=outputs.probabilities.argmax(axis=1),
        probabilities=outputs.probabilities,
        # A blank image is no digit, whatever a model makes of it (the bundled one: a sure 1).
        is_digit=model.is_digit(outputs) & images.reshape(len(images), -1).any(axis=1),
    )


def check_images(images: np.ndarray) -> None:
    """ValueError unless `images` is a batch a model takes: float32, (n, 28, 28, 1), with
    1 <= n <= MAX_BATCH."""
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.float32
        or images.shape[1:] != INPUT_SHAPE
        or not 1 <= len(images) <= MAX_BATCH
    ):
        shape = getattr(images, "shape", None)
        raise ValueError(f"images must be float32 (1..{MAX_BATCH}, 28, 28, 1), not {shape}")
