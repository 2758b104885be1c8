"""A loaded ONNX model: one onnxruntime session, created once, checked against the model
contract and warmed before use; and the holder of the one being served. Every run is bounded in
time (watchdog.py), every answer checked against the contract, and a model that keeps failing
is reported to whoever holds it (strikes.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from functions.clock import utc_now
from functions.model_contract import (
    INPUT_SHAPE,
    VERSION_KEY,
    DigitRule,
    InferenceTimeout,
    ModelContractError,
    ModelOutputError,
    ModelOutputs,
    ModelRunError,
    check_not_digit,
    check_probabilities,
    digit_rule,
    open_session,
    output_names,
)
from functions.serving.strikes import Strikes
from functions.serving.watchdog import RunBound, bounded_run

# Single-image runs timed (thread CPU time) after the first two warm-up runs, for the model's
# own latency: the last warm-up run is the first of them.
LATENCY_RUNS = 3


@dataclass(frozen=True)
class LoadedModel:
    session: ort.InferenceSession
    version: str
    sha256: str
    source: str  # "bundled" or "storage"
    loaded_at: str
    metadata: dict[str, str] = field(default_factory=dict)
    digit_rule: DigitRule | None = None  # how it tells a digit from what is not one
    bound: RunBound = field(default_factory=RunBound.loading)
    strikes: Strikes = field(default_factory=Strikes, compare=False, repr=False)

    def predict(self, images: np.ndarray) -> ModelOutputs:
        """(n, 28, 28, 1) float32 raw ink -> the (n, 10) probabilities, and the (n,) not_digit
        where the model has it. Thread-safe: onnxruntime sessions may run concurrently.
        Bounded: a run past its bound is ended (InferenceTimeout). Checked on every call
        (ModelOutputError): one row of probabilities per image, each value in [0, 1], each row
        summing to 1, one not_digit in [0, 1] per image; a model that is right only for the
        inputs it was tried on must not answer 2 images with 1 row, or with logits. A failure
        counts as a strike."""
        count = len(images)
        try:
            outputs = bounded_run(self.session, images, self.bound.seconds(count))
        except InferenceTimeout as error:
            if not error.starved:  # a busy instance is no fault of the model
                self.strikes.record(str(error))
            raise
        except Exception as error:  # onnxruntime's own types, for a kernel that failed
            self.strikes.record(f"onnxruntime failed: {error}")
            raise ModelRunError(
                f"model {self.version} failed on {count} image(s): {error}"
            ) from error
        try:
            check_probabilities(outputs.probabilities, count)
            if outputs.not_digit is not None:
                check_not_digit(outputs.not_digit, count)
        except ModelOutputError as error:
            self.strikes.record(str(error))
            raise
        return outputs

    def is_digit(self, outputs: ModelOutputs) -> np.ndarray:
        """One bool per image of `outputs`: the model's own rule; every image is a digit for a
        model that declares none (those made before the rule)."""
        if self.digit_rule is None:
            return np.ones(len(outputs.probabilities), dtype=bool)
        return self.digit_rule.is_digit(outputs.probabilities, outputs.not_digit)

    def describe(self) -> dict[str, object]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "source": self.source,
            "loaded_at": self.loaded_at,
            "test_accuracy": _float_or_none(self.metadata.get("test_accuracy")),
            "created_at": self.metadata.get("created_at"),
            "inference_bound": self.bound.describe(),
        }


def load_model(content: bytes, *, source: str, gate_latency_ms: float | None = None) -> LoadedModel:
    """Build, check and warm a session from the bytes of an ONNX file. Its runs are bounded
    from `gate_latency_ms` (the gate's median, from current.json) and the latency measured
    here, whichever is larger."""
    session = open_session(content)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    model = LoadedModel(
        session=session,
        version=metadata.get(VERSION_KEY, "unversioned"),
        sha256=hashlib.sha256(content).hexdigest(),
        source=source,
        loaded_at=utc_now(),
        metadata=metadata,
        digit_rule=digit_rule(metadata, output_names(session)),
    )
    try:
        measured_ms = warm_up(model)
    except Exception as error:  # e.g. a fixed batch dimension: [1, 28, 28, 1] refuses 8 images
        raise ModelContractError(f"inference on [N, 28, 28, 1] failed: {error}") from error
    bound = RunBound.from_latency(_positive_or_none(gate_latency_ms), measured_ms)
    return dataclasses.replace(model, bound=bound, strikes=Strikes())


def load_model_file(path: str | Path, *, source: str) -> LoadedModel:
    return load_model(Path(path).read_bytes(), source=source)


def warm_up(model: LoadedModel) -> float:
    """The first runs allocate buffers; do them before a request waits on them. Then the
    median CPU time of a single image, in ms: the model's own latency on this instance."""
    for batch in (1, 8):
        model.predict(np.zeros((batch, *INPUT_SHAPE), dtype=np.float32))
    image = np.zeros((1, *INPUT_SHAPE), dtype=np.float32)
    timings = []
    for _ in range(LATENCY_RUNS):
        started = time.thread_time()
        model.predict(image)
        timings.append(time.thread_time() - started)
    return round(statistics.median(timings) * 1e3, 4)


class ModelHolder:
    """Holds the model being served. Readers take `current` once per request and use that object
    to the end, so a swap never changes a request's model halfway through. `on_failing(model,
    reason)` hears of a model that this holder served when its failures reach the limit
    (strikes.py)."""

    def __init__(self, on_failing: Callable[[LoadedModel, str], None] | None = None) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self._on_failing = on_failing

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        self._listen_to(model)
        with self._lock:
            previous, self._current = self._current, model
        return previous

    def swap_if_empty(self, model: LoadedModel) -> None:
        self._listen_to(model)
        with self._lock:
            if self._current is None:
                self._current = model

    def swap_if_current(self, expected: LoadedModel, model: LoadedModel) -> bool:
        """Serve `model` instead of `expected`, unless something else is served by now."""
        self._listen_to(model)
        with self._lock:
            if self._current is not expected:
                return False
            self._current = model
            return True

    def _listen_to(self, model: LoadedModel) -> None:
        on_failing = self._on_failing
        if on_failing is not None:
            model.strikes.listener = lambda reason: on_failing(model, reason)


def _float_or_none(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None  # JSON has no NaN


def _positive_or_none(value: object) -> float | None:
    """A latency figure read from storage: a positive finite number, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None
