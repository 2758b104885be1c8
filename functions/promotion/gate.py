"""The checks a dropped model file must pass, in order; the first that fails names the reason."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from functions.promotion.gate_set import GateSet
from functions.serving.model import (
    REQUIRED_METADATA,
    LoadedModel,
    ModelContractError,
    ModelLoadError,
    load_model,
)
from functions.signing import is_valid
from functions.storage.registry import VERSION_PATTERN

MAX_MODEL_BYTES = 16 * 1024 * 1024
MAX_MEDIAN_LATENCY_MS = 25.0  # a sanity bound: the served model takes about 0.15 ms
LATENCY_RUNS = 30
ROW_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class GatePolicy:
    min_accuracy: float
    max_regression: float
    signing_key: bytes | None


@dataclass
class Verdict:
    version: str
    sha256: str
    accepted: bool = False
    failed_check: str | None = None
    reason: str | None = None
    figures: dict[str, object] = field(default_factory=dict)
    model: LoadedModel | None = None


class Refused(Exception):
    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check, self.reason = check, reason


def version_of(name: str) -> str:
    """incoming/<version>.onnx -> <version> (the name may lack the suffix; then it is refused)."""
    return name[: -len(".onnx")] if name.endswith(".onnx") else name


def judge(
    name: str,
    content: bytes,
    blob_metadata: dict[str, str],
    *,
    policy: GatePolicy,
    gate_set: GateSet,
    current: LoadedModel | None,
    previously_accepted: bool = False,
    size: int | None = None,
) -> Verdict:
    """Every check in order. A version accepted before (same bytes) skips the quality gates:
    dropping it again is how a rollback is done, and it was judged when first promoted."""
    verdict = Verdict(version=version_of(name), sha256=hashlib.sha256(content).hexdigest())
    verdict.figures["size_bytes"] = size = len(content) if size is None else size
    try:
        check_name(name)
        check_size(size)
        check_integrity(verdict.sha256, blob_metadata, policy.signing_key)
        model = check_loads(content)
        check_contract(model, verdict.version, gate_set)
        if not previously_accepted:
            verdict.figures.update(check_quality(model, current, gate_set, policy))
            verdict.figures["median_latency_ms"] = check_latency(model)
    except Refused as refusal:
        verdict.failed_check, verdict.reason = refusal.check, refusal.reason
        return verdict
    verdict.accepted, verdict.model = True, model
    return verdict


def check_name(name: str) -> None:
    if not name.endswith(".onnx"):
        raise Refused("name", f"{name!r} does not end in .onnx; drop incoming/<version>.onnx")
    if not VERSION_PATTERN.fullmatch(version_of(name)):
        raise Refused(
            "name",
            f"version {version_of(name)!r} is not valid: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )


def check_size(size: int) -> None:
    if not size:
        raise Refused("size", "the file is empty")
    if size > MAX_MODEL_BYTES:
        raise Refused("size", f"{size} bytes is over the cap of {MAX_MODEL_BYTES}")


def check_integrity(sha256: str, blob_metadata: dict[str, str], signing_key: bytes | None) -> None:
    declared = blob_metadata.get("sha256")
    if declared is not None and declared.lower() != sha256:
        raise Refused(
            "integrity",
            f"the content's sha256 {sha256} differs from the sha256 in the blob's metadata "
            f"{declared} (an incomplete or altered upload)",
        )
    if signing_key is None:
        return
    signature = blob_metadata.get("signature")
    if not signature:
        raise Refused("integrity", "MODEL_SIGNING_KEY is set and the blob carries no signature")
    if not is_valid(signature, sha256, signing_key):
        raise Refused("integrity", "the signature does not match the content and signing key")


def check_loads(content: bytes) -> LoadedModel:
    try:
        return load_model(content, source="storage")
    except ModelLoadError as error:
        raise Refused("loads", str(error)) from error
    except ModelContractError as error:
        raise Refused("contract", str(error)) from error


def check_contract(model: LoadedModel, version: str, gate_set: GateSet) -> None:
    missing = [key for key in REQUIRED_METADATA if key not in model.metadata]
    if missing:
        raise Refused("contract", f"metadata_props lack {', '.join(missing)}")
    if model.metadata["version"] != version:
        raise Refused(
            "contract",
            f"the file's metadata says version {model.metadata['version']!r}, its name {version!r}",
        )
    try:
        probabilities = model.predict(gate_set.images)
    except Exception as error:  # onnxruntime raises its own types for shape and type errors
        raise Refused("contract", f"inference on [N, 28, 28, 1] failed: {error}") from error
    if probabilities.shape != (len(gate_set.labels), 10):
        raise Refused("contract", f"output shape {probabilities.shape}; expected (N, 10)")
    if not np.all(np.isfinite(probabilities)):
        raise Refused("contract", "the output holds NaN or infinite values")
    sums = probabilities.sum(axis=1)
    if np.any(probabilities < 0) or np.any(np.abs(sums - 1) > ROW_SUM_TOLERANCE):
        raise Refused(
            "contract",
            "the output rows are not probabilities (each must be >= 0 and sum to 1; found sums "
            f"from {sums.min():.3f} to {sums.max():.3f}): logits need a softmax in the graph",
        )


def check_quality(
    model: LoadedModel, current: LoadedModel | None, gate_set: GateSet, policy: GatePolicy
) -> dict[str, object]:
    predicted = model.predict(gate_set.images).argmax(axis=1)
    accuracy = float(np.mean(predicted == gate_set.labels))
    figures: dict[str, object] = {"gate_images": len(gate_set.labels), "gate_accuracy": accuracy}
    if accuracy < policy.min_accuracy:
        raise Refused(
            "accuracy",
            f"{accuracy:.4f} on the gate set is under the floor of {policy.min_accuracy:.4f}",
        )
    if current is not None:
        current_predicted = current.predict(gate_set.images).argmax(axis=1)
        current_accuracy = float(np.mean(current_predicted == gate_set.labels))
        figures.update(
            current_version=current.version,
            current_accuracy=current_accuracy,
            agreement_with_current=float(np.mean(current_predicted == predicted)),
        )
        if current_accuracy - accuracy > policy.max_regression:
            raise Refused(
                "regression",
                f"{accuracy:.4f} on the gate set is {current_accuracy - accuracy:.4f} below the "
                f"current model {current.version} ({current_accuracy:.4f}); at most "
                f"{policy.max_regression:.4f} is allowed",
            )
    return figures


def check_latency(model: LoadedModel) -> float:
    image = np.zeros((1, 28, 28, 1), dtype=np.float32)
    timings = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        model.predict(image)
        timings.append(time.perf_counter() - started)
    median_ms = float(np.median(timings) * 1e3)
    if median_ms > MAX_MEDIAN_LATENCY_MS:
        raise Refused(
            "latency",
            f"median single-image inference {median_ms:.1f} ms is over {MAX_MEDIAN_LATENCY_MS} ms",
        )
    return median_ms
