"""A loaded ONNX model: one onnxruntime session, created once, checked against the model
contract and warmed before use; and the holder of the one being served."""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from functions.clock import utc_now
from functions.model_contract import (
    INPUT_SHAPE,
    NUM_CLASSES,
    VERSION_KEY,
    ModelContractError,
    ModelLoadError,
    ModelOutputError,
    UnusableModel,
    open_session,
    run_inference,
)

# Re-exported: callers of the loaded model catch these without knowing the contract module.
__all__ = [
    "LoadedModel",
    "ModelContractError",
    "ModelHolder",
    "ModelLoadError",
    "ModelOutputError",
    "UnusableModel",
    "load_model",
    "load_model_file",
]


@dataclass(frozen=True)
class LoadedModel:
    session: ort.InferenceSession
    version: str
    sha256: str
    source: str  # "bundled" or "storage"
    loaded_at: str
    metadata: dict[str, str] = field(default_factory=dict)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) float32 raw ink -> (n, 10) probabilities. Thread-safe: onnxruntime
        sessions may run concurrently. Checked on every call: a model that is right only for the
        batch sizes it was tried on must not answer 2 images with 1 prediction."""
        probabilities = run_inference(self.session, images)
        expected = (len(images), NUM_CLASSES)
        if probabilities.shape != expected:
            raise ModelOutputError(
                f"model {self.version} answered {len(images)} image(s) with an output of shape "
                f"{list(probabilities.shape)}; expected {list(expected)}"
            )
        return probabilities

    def describe(self) -> dict[str, object]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "source": self.source,
            "loaded_at": self.loaded_at,
            "test_accuracy": _float_or_none(self.metadata.get("test_accuracy")),
            "created_at": self.metadata.get("created_at"),
        }


def load_model(content: bytes, *, source: str) -> LoadedModel:
    """Build, check and warm a session from the bytes of an ONNX file."""
    session = open_session(content)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    model = LoadedModel(
        session=session,
        version=metadata.get(VERSION_KEY, "unversioned"),
        sha256=hashlib.sha256(content).hexdigest(),
        source=source,
        loaded_at=utc_now(),
        metadata=metadata,
    )
    try:
        warm_up(model)
    except Exception as error:  # e.g. a fixed batch dimension: [1, 28, 28, 1] refuses 8 images
        raise ModelContractError(f"inference on [N, 28, 28, 1] failed: {error}") from error
    return model


def load_model_file(path: str | Path, *, source: str) -> LoadedModel:
    return load_model(Path(path).read_bytes(), source=source)


def warm_up(model: LoadedModel) -> None:
    """The first runs allocate buffers; do them before a request waits on them."""
    for batch in (1, 8, 1):
        model.predict(np.zeros((batch, *INPUT_SHAPE), dtype=np.float32))


class ModelHolder:
    """Holds the model being served. Readers take `current` once per request and use that object
    to the end, so a swap never changes a request's model halfway through."""

    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        with self._lock:
            previous, self._current = self._current, model
        return previous

    def swap_if_empty(self, model: LoadedModel) -> None:
        with self._lock:
            if self._current is None:
                self._current = model


def _float_or_none(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None  # JSON has no NaN
