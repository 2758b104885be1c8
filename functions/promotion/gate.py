"""The checks a dropped model file must pass, in order; the first that fails refuses it
(`Refusal`, with its check and reason). The candidate itself only ever runs in its trial's child
process. A check on the candidate's answers (accuracy, regression, ...) is one function in
QUALITY_CHECKS: adding one is adding a function there."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from functions.model_contract import IS_DIGIT_RULE_KEY, MAX_BATCH, UnusableModel
from functions.promotion.errors import Refusal
from functions.promotion.gate_set import GateSet
from functions.promotion.sandbox import GateAnswers, TrialLimits, TrialReport, run_trial
from functions.serving.loaded_model import LoadedModel
from functions.settings import SIGNING_KEY_SETTING
from functions.signing import SHA256_KEY, SIGNATURE_KEY, is_valid
from functions.storage.registry import sha256_of

log = logging.getLogger(__name__)

MAX_MODEL_BYTES = 16 * 1024 * 1024
# The share of the gate set's digits a candidate may take for no digit (contracts.md section 1).
MAX_FLAGGED_DIGITS = 0.01
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


@dataclass(frozen=True)
class Judged:
    """A candidate that passed every check: the figures recorded for it, in the order they are
    recorded, and its answers on the gate set (from its trial), which the quality checks judge
    again when another version became current meanwhile."""

    figures: dict[str, object]
    gate_answers: GateAnswers  # on the gate set's digits, then its negatives


def judge(
    version: str,
    content: bytes,
    blob_metadata: dict[str, str],
    *,
    policy: GatePolicy,
    gate_set: GateSet,
    current: LoadedModel | None,
    accepted_before: bool = False,
    size: int | None = None,
    limits: TrialLimits = DEFAULT_TRIAL_LIMITS,
) -> Judged:
    """Every check in order; Refusal from the first that fails. A version accepted before (same
    bytes) skips the quality checks (dropping it again is how a rollback is done, and it was
    judged when first promoted), never the trial's safety checks."""
    size = len(content) if size is None else size
    check_size(size)
    check_integrity(sha256_of(content), blob_metadata, policy.signing_key)
    trial = check_trial(content, version, gate_set, limits)
    if accepted_before:
        return Judged({"size_bytes": size}, trial.answers)
    quality = check_quality(trial.answers, current, gate_set, policy)
    figures = {"size_bytes": size, **quality, **trial.figures, "trial_seconds": trial.seconds}
    return Judged(figures, trial.answers)


def check_size(size: int) -> None:
    if not size:
        raise Refusal("size", "the file is empty")
    if size > MAX_MODEL_BYTES:
        raise Refusal("size", f"{size} bytes is over the cap of {MAX_MODEL_BYTES}")


def check_integrity(sha256: str, blob_metadata: dict[str, str], signing_key: bytes | None) -> None:
    declared = blob_metadata.get(SHA256_KEY)
    if declared is not None and declared.lower() != sha256:
        raise Refusal(
            "integrity",
            f"the content's sha256 {sha256} differs from the sha256 in the blob's metadata "
            f"{declared} (an incomplete or altered upload)",
        )
    if signing_key is None:
        return
    signature = blob_metadata.get(SIGNATURE_KEY)
    if not signature:
        raise Refusal(
            "integrity", f"{SIGNING_KEY_SETTING} is set and the blob carries no signature"
        )
    if not is_valid(signature, sha256, signing_key):
        raise Refusal("integrity", "the signature does not match the content and signing key")


def check_trial(
    content: bytes, version: str, gate_set: GateSet, limits: TrialLimits
) -> TrialReport:
    """Everything that touches the candidate's bytes, in a child process (trial.py): external
    data, the ONNX checker, the declared interface and the graph rule (check `graph`: no control
    flow, no randomness, only the contract's operators, every size set by the batch size alone,
    so that what the trial measures next holds for every input; see model_contract.py), then
    loading, the contract, latency, batch sizes, memory, and its answers on the gate set. Its
    refusal, timeout or crash is a Refusal (sandbox.py)."""
    settings = {
        "version": version,
        "batch_sizes": list(TRIED_BATCH_SIZES),
        "batch_row_tolerance": BATCH_ROW_TOLERANCE,
        "latency_runs": LATENCY_RUNS,
        "max_median_latency_ms": MAX_MEDIAN_LATENCY_MS,
        "max_single_run_seconds": MAX_SINGLE_RUN_SECONDS,
        "max_memory_per_image_bytes": MAX_MEMORY_PER_IMAGE_BYTES,
    }
    return run_trial(content, gate_set.tried, settings, limits)


@dataclass(frozen=True)
class Evidence:
    """What a quality check judges: the candidate's answers on the gate set (from its trial),
    the gate set, the model to beat (None: the floor alone), and the policy."""

    answers: GateAnswers  # on the gate set's digits, then its negatives
    gate_set: GateSet
    current: LoadedModel | None
    policy: GatePolicy

    @property
    def predicted(self) -> np.ndarray:
        """The digit it read in each of the gate set's digits."""
        return self.answers.probabilities[: len(self.gate_set.labels)].argmax(axis=1)

    @property
    def digits_taken_for_digits(self) -> np.ndarray:
        return self.answers.is_digit[: len(self.gate_set.labels)]

    @property
    def negatives_taken_for_digits(self) -> np.ndarray:
        return self.answers.is_digit[len(self.gate_set.labels) :]


def check_accuracy(evidence: Evidence) -> dict[str, object]:
    """The floor: the candidate's accuracy on the gate set."""
    labels, floor = evidence.gate_set.labels, evidence.policy.min_accuracy
    accuracy = float(np.mean(evidence.predicted == labels))
    if accuracy < floor:
        raise Refusal(
            "accuracy", f"{accuracy:.4f} on the gate set is under the floor of {floor:.4f}"
        )
    return {"gate_images": len(labels), "gate_accuracy": accuracy}


def check_regression(evidence: Evidence) -> dict[str, object]:
    """No worse than the current model on the gate set, by more than the policy allows. The
    current model runs here, bounded as in serving; one that cannot answer (serving may be
    rolling it back, or it predates a rule) is no yardstick, and must not block its own
    replacement: the candidate is then held to the floor alone, and the figures say why."""
    current, gate_set = evidence.current, evidence.gate_set
    if current is None:
        return {}
    try:
        current_predicted = np.concatenate(  # in serving-sized batches: bounded memory here
            [
                current.predict(gate_set.images[start : start + MAX_BATCH]).probabilities.argmax(
                    axis=1
                )
                for start in range(0, len(gate_set.images), MAX_BATCH)
            ]
        )
    except UnusableModel as error:
        log.error("the current model %s cannot answer the gate set: %s", current.version, error)
        return {"current_version": current.version, "current_unusable": str(error)}
    accuracy = float(np.mean(evidence.predicted == gate_set.labels))
    current_accuracy = float(np.mean(current_predicted == gate_set.labels))
    allowed = evidence.policy.max_regression
    if current_accuracy - accuracy > allowed:
        raise Refusal(
            "regression",
            f"{accuracy:.4f} on the gate set is {current_accuracy - accuracy:.4f} below the "
            f"current model {current.version} ({current_accuracy:.4f}); at most "
            f"{allowed:.4f} is allowed",
        )
    return {
        "current_version": current.version,
        "current_accuracy": current_accuracy,
        "agreement_with_current": float(np.mean(current_predicted == evidence.predicted)),
    }


def check_is_digit(evidence: Evidence) -> dict[str, object]:
    """The candidate tells a digit from what is not one, by the rule it declares: it flags at
    most MAX_FLAGGED_DIGITS of the gate set's digits, and some of its negatives (a model that
    declares no rule flags none)."""
    digits = float(np.mean(~evidence.digits_taken_for_digits))
    negatives = evidence.negatives_taken_for_digits
    if digits > MAX_FLAGGED_DIGITS:
        raise Refusal(
            "is_digit",
            f"it says {digits:.2%} of the gate set's digits are no digit; at most "
            f"{MAX_FLAGGED_DIGITS:.0%} may be",
        )
    if negatives.all():
        raise Refusal(
            "is_digit",
            f"it takes every one of the gate set's {len(negatives)} non-digits for a digit "
            f"(its metadata declares no {IS_DIGIT_RULE_KEY}, or one that flags nothing)",
        )
    return {
        "gate_digits_flagged": digits,
        "gate_negatives_flagged": float(np.mean(~negatives)),
    }


# The checks on the candidate's answers, in order: each returns the figures it records, or
# raises Refusal. A new check is a function of Evidence added here.
QUALITY_CHECKS: tuple[Callable[[Evidence], dict[str, object]], ...] = (
    check_accuracy,
    check_regression,
    check_is_digit,
)


def check_quality(
    answers: GateAnswers,
    current: LoadedModel | None,
    gate_set: GateSet,
    policy: GatePolicy,
) -> dict[str, object]:
    """Every quality check on the candidate's answers (from its trial); their figures, merged
    in order. Run again, against the newer model, when another version became current while
    the candidate was judged."""
    evidence = Evidence(answers, gate_set, current, policy)
    figures: dict[str, object] = {}
    for check in QUALITY_CHECKS:
        figures.update(check(evidence))
    return figures
