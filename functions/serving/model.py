"""A loaded ONNX model: one onnxruntime session, created once, checked and warmed before use."""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from functions.clock import utc_now

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
REQUIRED_METADATA = (
    "version",
    "created_at",
    "test_accuracy",
    "training_data_sha256",
    "framework",
    "source_commit",
)


class UnusableModel(Exception):
    """A model file that cannot serve; the message names what is wrong."""


class ModelLoadError(UnusableModel):
    """onnxruntime cannot load the file at all (not ONNX, truncated, unknown operators)."""


class ModelContractError(UnusableModel):
    """The file loads but breaks the model contract (names, dtypes, shapes)."""


class ModelOutputError(UnusableModel):
    """A loaded model answered a batch with another shape than one row of 10 per image: its
    answer is not used, whatever the gate saw."""


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
        probabilities = self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
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


def session_options() -> ort.SessionOptions:
    # One intra-op thread: measured here, single-image p99 drops from about 8 ms to under 1 ms,
    # and concurrent requests already spread over the worker's threads.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def load_model(content: bytes, *, source: str) -> LoadedModel:
    """Build, check and warm a session from the bytes of an ONNX file."""
    try:
        session = ort.InferenceSession(
            content, session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises several unrelated types for bad files
        raise ModelLoadError(f"onnxruntime cannot load the file: {error}") from error
    check_interface(session)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    model = LoadedModel(
        session=session,
        version=metadata.get("version", "unversioned"),
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


def check_interface(session: ort.InferenceSession) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [item.name for item in inputs] != [INPUT_NAME]:
        raise ModelContractError(
            f"inputs are {[item.name for item in inputs]}; expected ['pixels']"
        )
    if [item.name for item in outputs] != [OUTPUT_NAME]:
        raise ModelContractError(
            f"outputs are {[item.name for item in outputs]}; expected ['probabilities']"
        )
    for item, expected_tail in ((inputs[0], list(INPUT_SHAPE)), (outputs[0], [NUM_CLASSES])):
        if item.type != "tensor(float)":
            raise ModelContractError(f"{item.name} is {item.type}; expected tensor(float)")
        if len(item.shape) != 1 + len(expected_tail) or list(item.shape[1:]) != expected_tail:
            expected = ["N", *expected_tail]
            raise ModelContractError(f"{item.name} has shape {item.shape}; expected {expected}")


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
