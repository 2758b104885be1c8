"""The checks a dropped model file must pass, in order; the first that fails names the reason."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np

from functions.model_contract import UnusableModel
from functions.promotion.gate_set import GateSet
from functions.promotion.sandbox import TrialFailure, TrialLimits, TrialReport, run_trial
from functions.serving.inputs import MAX_BATCH
from functions.serving.loaded_model import LoadedModel
from functions.settings import SIGNING_KEY_SETTING
from functions.signing import SHA256_KEY, SIGNATURE_KEY, is_valid
from functions.storage.errors import InvalidName
from functions.storage.registry import incoming_version

log = logging.getLogger(__name__)

MAX_MODEL_BYTES = 16 * 1024 * 1024
MAX_MEDIAN_LATENCY_MS = 25.0  # a sanity bound: the served model takes about 0.15 ms
# One run this long refuses at once (40x the median bound): a model that takes seconds per
# inference is refused in seconds, not after LATENCY_RUNS of them.
MAX_SINGLE_RUN_SECONDS = 1.0
LATENCY_RUNS = 30
# Batch sizes that serving treats like any other (odd ones, and the largest the API allows):
# a model must not be right only for the sizes that warm-up and the gate set happen to use.
TRIED_BATCH_SIZES = (1, 2, 3, 7, MAX_BATCH)
# An image's row in a batch against its row alone: the bundled network's are bit-identical.
BATCH_ROW_TOLERANCE = 1e-4
# Peak memory a full batch adds, per image. The bundled network: about 180 KiB. Serving runs
# several batches at once on an instance of 2 GB, so a model may cost at most about 5x that.
MAX_MEMORY_PER_IMAGE_BYTES = 1024 * 1024
# The whole trial in its child process: the bundled network's takes about 4 s on a busy 2-core
# machine (interpreter start, imports, checker, graph rule, every run). The graph rule leaves no
# model that can run for ever; one that is merely slow is killed here.
TRIAL_TIMEOUT_SECONDS = 30.0
# The child's address space: the interpreter with numpy, onnx and onnxruntime maps about
# 230 MB, a full batch within the per-image bound adds at most 256 MiB; a larger allocation
# fails in the child, never in the host.
TRIAL_ADDRESS_SPACE_BYTES = 1024 * 1024 * 1024
DEFAULT_TRIAL_LIMITS = TrialLimits(
    timeout_seconds=TRIAL_TIMEOUT_SECONDS, address_space_bytes=TRIAL_ADDRESS_SPACE_BYTES
)


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
    # The candidate's answer (argmax) for each gate-set image, from its trial: what the
    # regression gate compares when it is run again against a newer current model.
    gate_predictions: np.ndarray | None = None


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
    limits: TrialLimits = DEFAULT_TRIAL_LIMITS,
) -> Verdict:
    """Every check in order. The candidate itself only ever runs in its trial's child process.
    A version accepted before (same bytes) skips the quality gates (dropping it again is how a
    rollback is done, and it was judged when first promoted), never the trial's safety checks."""
    verdict = Verdict(version=version_of(name), sha256=hashlib.sha256(content).hexdigest())
    verdict.figures["size_bytes"] = size = len(content) if size is None else size
    try:
        check_name(name)
        check_size(size)
        check_integrity(verdict.sha256, blob_metadata, policy.signing_key)
        report = check_trial(content, verdict.version, gate_set, limits)
        verdict.gate_predictions = report.gate_probabilities.argmax(axis=1)
        if not previously_accepted:
            verdict.figures.update(
                check_quality(verdict.gate_predictions, current, gate_set, policy)
            )
            verdict.figures.update(report.figures, trial_seconds=report.seconds)
    except Refused as refusal:
        verdict.failed_check, verdict.reason = refusal.check, refusal.reason
        return verdict
    verdict.accepted = True
    return verdict


def check_name(name: str) -> None:
    """The registry's own rule for a name in the drop zone (`<version>.onnx`)."""
    try:
        incoming_version(name)
    except InvalidName as error:
        raise Refused("name", str(error)) from None


def check_size(size: int) -> None:
    if not size:
        raise Refused("size", "the file is empty")
    if size > MAX_MODEL_BYTES:
        raise Refused("size", f"{size} bytes is over the cap of {MAX_MODEL_BYTES}")


def check_integrity(sha256: str, blob_metadata: dict[str, str], signing_key: bytes | None) -> None:
    declared = blob_metadata.get(SHA256_KEY)
    if declared is not None and declared.lower() != sha256:
        raise Refused(
            "integrity",
            f"the content's sha256 {sha256} differs from the sha256 in the blob's metadata "
            f"{declared} (an incomplete or altered upload)",
        )
    if signing_key is None:
        return
    signature = blob_metadata.get(SIGNATURE_KEY)
    if not signature:
        raise Refused(
            "integrity", f"{SIGNING_KEY_SETTING} is set and the blob carries no signature"
        )
    if not is_valid(signature, sha256, signing_key):
        raise Refused("integrity", "the signature does not match the content and signing key")


def check_trial(
    content: bytes, version: str, gate_set: GateSet, limits: TrialLimits
) -> TrialReport:
    """Everything that touches the candidate's bytes, in a child process (trial.py): external
    data, the ONNX checker, the declared interface and the graph rule (check `graph`: no control
    flow, no randomness, only the contract's operators, every size set by the batch size alone,
    so that what the trial measures next holds for every input; see model_contract.py), then
    loading, the contract, latency, batch sizes, memory, and its answers on the gate set. Its
    refusal, timeout or crash is a refusal here."""
    settings = {
        "version": version,
        "batch_sizes": list(TRIED_BATCH_SIZES),
        "batch_row_tolerance": BATCH_ROW_TOLERANCE,
        "latency_runs": LATENCY_RUNS,
        "max_median_latency_ms": MAX_MEDIAN_LATENCY_MS,
        "max_single_run_seconds": MAX_SINGLE_RUN_SECONDS,
        "max_memory_per_image_bytes": MAX_MEMORY_PER_IMAGE_BYTES,
    }
    try:
        return run_trial(content, gate_set.images, settings, limits)
    except TrialFailure as failure:
        raise Refused(failure.check, failure.reason) from failure


def check_quality(
    predicted: np.ndarray, current: LoadedModel | None, gate_set: GateSet, policy: GatePolicy
) -> dict[str, object]:
    """`predicted`: the candidate's answer for each gate-set image (from its trial). The current
    model runs here, bounded as in serving; one that cannot answer (serving may be rolling it
    back, or it predates a rule) is no yardstick, and must not block its own replacement: the
    candidate is then held to the floor alone, and the figures say why."""
    accuracy = float(np.mean(predicted == gate_set.labels))
    figures: dict[str, object] = {"gate_images": len(gate_set.labels), "gate_accuracy": accuracy}
    if accuracy < policy.min_accuracy:
        raise Refused(
            "accuracy",
            f"{accuracy:.4f} on the gate set is under the floor of {policy.min_accuracy:.4f}",
        )
    if current is not None:
        try:
            current_predicted = np.concatenate(  # in serving-sized batches: bounded memory here
                [
                    current.predict(gate_set.images[start : start + MAX_BATCH]).argmax(axis=1)
                    for start in range(0, len(gate_set.images), MAX_BATCH)
                ]
            )
        except UnusableModel as error:
            log.error("the current model %s cannot answer the gate set: %s", current.version, error)
            return {**figures, "current_version": current.version, "current_unusable": str(error)}
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
