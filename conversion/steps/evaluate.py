"""Step 3, evaluate: the verified ONNX file in; out, the model version as it will be published
(the contract's metadata stamped in), its report, confusion matrix and model card. The step
fails when test accuracy is under a floor, so that a broken run stops before publishing. When
the train step was given people's corrections, the model (and, for comparison, the bundled one)
is also measured on the part of them held out from training, which the train step left beside
the model.

python -m conversion.steps.evaluate --trained build/steps/trained \
    --converted build/steps/converted --data mnist.npz --version cnn-2 --out build/model
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Before TensorFlow is imported: it reads its log level once, at import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import onnx
import onnxruntime
import tensorflow as tf
import tf2onnx

from conversion.convert import save, set_metadata
from conversion.data import DatasetError, Mnist
from conversion.evaluate import evaluate, flagged, plot_confusion_matrix
from conversion.feedback import (
    HELD_OUT_FILE,
    load_held_out,
    no_feedback_record,
    training_data_sha256,
)
from conversion.model_card import render_model_card
from conversion.negatives import held_out_negatives
from conversion.network import NOT_DIGIT_CLASS
from conversion.pen import pen_digits
from conversion.steps.convert import CONVERSION_FILE, MODEL_FILE
from conversion.steps.errors import StepInputError, required_file, run_step, step_parser
from conversion.steps.train import RECORD_FILE, load_data
from conversion.verify import onnx_outputs, onnx_session
from functions.model_contract import IS_DIGIT_RULE_KEY, VERSION_KEY, DigitRule, digit_rule
from functions.serving.provider import BUNDLED_MODEL
from functions.storage.names import VERSION_PATTERN

# The floor of the step's command line and of the Azure ML pipeline: the promotion gate's own
# floor (PROMOTION_MIN_ACCURACY), here on the full test set, so that a run the gate would refuse
# never gets as far as publishing. A full `make train` run reaches 99.5%.
DEFAULT_MIN_ACCURACY = 0.98
# The held-out negatives every model is measured on (conversion/negatives.py's held-out
# generator, its own seed) and the MNIST test digits redrawn with the site's pen.
HELD_OUT_NEGATIVES = 1000
PEN_DIGITS = 2000
log = logging.getLogger("conversion.evaluate")


class BelowFloor(Exception):
    """The model's test accuracy is under the floor; its report and card are still written."""


def evaluate_and_document(
    onnx_model: onnx.ModelProto,
    evaluated_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    mnist: Mnist,
    training: dict,
    conversion: dict,
    version: str,
    source: str | None = None,
    min_accuracy: float = 0.0,
    feedback_held_out: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Measures the ONNX file at `evaluated_path`, then writes into `out` the file with the
    contract's metadata (model.onnx), report.json, confusion_matrix.png and MODEL_CARD.md.
    `feedback_held_out`: the held-out corrections' images and labels, when the training record
    says feedback was used. Returns the report; raises BelowFloor after writing them when
    accuracy < `min_accuracy`."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rule_text = training.get("is_digit_rule")
    rule = model_rule(evaluated_path, rule_text)
    evaluation = evaluate(
        evaluated_path,
        mnist.x_test,
        mnist.y_test,
        rule=rule,
        negatives=held_out_negatives(HELD_OUT_NEGATIVES),
        pen=pen_digits(mnist.x_test, mnist.y_test, PEN_DIGITS),
    )
    feedback = {
        **(training.get("feedback") or no_feedback_record()),
        **held_out_figures(evaluated_path, feedback_held_out, rule),
    }
    metadata = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "test_accuracy": f"{evaluation['test_accuracy']:.4f}",
        "training_data_sha256": training_data_sha256(training["data"]["sha256"], feedback),
        "framework": framework_versions(),
        "source_commit": source or source_commit(),
    }
    if rule_text:
        metadata[IS_DIGIT_RULE_KEY] = rule_text
    set_metadata(onnx_model, metadata)
    final_path = out / MODEL_FILE
    save(onnx_model, final_path)
    evaluation["file_size_bytes"] = final_path.stat().st_size
    step_seconds = {
        "train": training.get("seconds"),
        "convert": conversion.get("seconds"),
        "evaluate": round(time.perf_counter() - started, 1),
    }
    report = {
        "metadata": metadata,
        "data": {"source": training["data"]["source"], "sha256": training["data"]["sha256"]},
        "training": {
            key: training[key]
            for key in (
                "settings",
                "fit_images",
                "validation_images",
                "best_epoch",
                "best_validation_accuracy",
                "history",
            )
        }
        | {
            "additions": training.get("additions") or {"negatives": 0, "pen_digits": 0},
            "is_digit_rule": rule_text,
        },
        "feedback": feedback,
        "conversion": {"opset": conversion["opset"]},
        "verification": conversion["verification"],
        "evaluation": evaluation,
        "step_seconds": step_seconds,
        "pipeline_seconds": round(sum(value or 0 for value in step_seconds.values()), 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_confusion_matrix(
        evaluation["confusion_matrix"],
        out / "confusion_matrix.png",
        title=f"{version}: {evaluation['test_accuracy']:.2%} on the MNIST test set",
    )
    (out / "MODEL_CARD.md").write_text(render_model_card(report))
    log.info(
        "done: accuracy %.4f, %d bytes, median latency %.3f ms -> %s",
        evaluation["test_accuracy"],
        evaluation["file_size_bytes"],
        evaluation["latency"]["median_ms"],
        out,
    )
    if evaluation["test_accuracy"] < min_accuracy:
        raise BelowFloor(
            f"test accuracy {evaluation['test_accuracy']:.4f} is under the floor "
            f"{min_accuracy:.4f}; {version} is not fit to publish (report in {out})"
        )
    return report


def model_rule(path: str | os.PathLike, rule_text: str | None) -> DigitRule | None:
    """The rule `rule_text` (None: none), checked against the outputs of the model at `path`."""
    names = [item.name for item in onnx_session(path).get_outputs()]
    return digit_rule({IS_DIGIT_RULE_KEY: rule_text} if rule_text else {}, names)


def held_out_figures(
    evaluated_path: str | os.PathLike,
    held_out: tuple[np.ndarray, np.ndarray] | None,
    rule: DigitRule | None = None,
) -> dict:
    """Accuracy on the held-out corrections of the model at `evaluated_path` (its digit `rule`)
    and of the bundled model (functions/model/, its own rule), on the same images. A "not a
    digit" correction is right when the rule flags it; a digit one when it is kept and read
    right. None where there is nothing to measure."""
    figures: dict[str, object] = {
        "held_out_correct": None,
        "held_out_accuracy": None,
        "bundled_model": None,
    }
    if held_out is None or not len(held_out[1]):
        return figures
    images, labels = held_out
    correct = _correct(evaluated_path, images, labels, rule)
    figures["held_out_correct"] = correct
    figures["held_out_accuracy"] = correct / len(labels)
    if BUNDLED_MODEL.is_file():
        bundled = onnx.load(BUNDLED_MODEL, load_external_data=False)
        bundled_metadata = {prop.key: prop.value for prop in bundled.metadata_props}
        bundled_version = bundled_metadata.get(VERSION_KEY)
        bundled_rule = digit_rule(bundled_metadata, [value.name for value in bundled.graph.output])
        bundled_correct = _correct(BUNDLED_MODEL, images, labels, bundled_rule)
        figures["bundled_model"] = {
            "version": bundled_version,
            "held_out_correct": bundled_correct,
            "held_out_accuracy": bundled_correct / len(labels),
        }
    log.info(
        "held-out feedback: %d of %d right (the bundled model: %s)",
        correct,
        len(labels),
        figures["bundled_model"] and figures["bundled_model"]["held_out_correct"],
    )
    return figures


def _correct(
    path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, rule: DigitRule | None
) -> int:
    outputs = onnx_outputs(onnx_session(path), images)
    not_digit = flagged(rule, outputs)
    predictions = np.where(not_digit, NOT_DIGIT_CLASS, outputs.probabilities.argmax(axis=1))
    return int(np.sum(predictions == labels))


def read_held_out(trained: str, training: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The held-out corrections the train step left, when its record says there are some."""
    if not (training.get("feedback") or {}).get("held_out"):
        return None
    path = required_file(trained, HELD_OUT_FILE, "train step")
    try:
        return load_held_out(path)
    except (OSError, ValueError, KeyError) as error:
        raise StepInputError(f"{path}: unreadable ({error})") from error


def checked_version(version: str) -> str:
    """The drop zone's rule for version names (docs/contracts.md section 2), checked before the
    minutes of evaluation rather than by the gate after publishing."""
    if not VERSION_PATTERN.fullmatch(version):
        raise StepInputError(
            f"version {version!r} does not match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
        )
    return version


def default_version() -> str:
    return "cnn-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def framework_versions() -> str:
    return (
        f"tensorflow {tf.__version__}; keras {keras.__version__}; tf2onnx {tf2onnx.__version__}; "
        f"onnx {onnx.__version__}; onnxruntime {onnxruntime.__version__}; numpy {np.__version__}"
    )


def source_commit() -> str:
    """The commit the code came from, marked "-dirty" when the work tree had changes; "unknown"
    outside a git checkout (Azure ML's code snapshot: pass --source-commit there)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as a developer runs it
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607 - as above
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def read_record(folder: str, name: str, produced_by: str) -> dict:
    path = required_file(folder, name, produced_by)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StepInputError(f"{path}: unreadable ({error})") from error


def main(argv: list[str] | None = None) -> int:
    parser = step_parser(__doc__)
    parser.add_argument("--trained", required=True, help="the train step's output folder")
    parser.add_argument("--converted", required=True, help="the convert step's output folder")
    parser.add_argument("--data", help="mnist.npz or IDX folder: its test images are measured")
    parser.add_argument("--out", required=True, help="folder for the model version and its papers")
    parser.add_argument("--version", help="model version (default: cnn-<UTC timestamp>)")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=DEFAULT_MIN_ACCURACY,
        help="fail under this test accuracy (default: %(default)s)",
    )
    parser.add_argument("--source-commit", help="default: the git checkout's HEAD, if any")
    args = parser.parse_args(argv)

    def step() -> None:
        version = checked_version(args.version or default_version())
        training = read_record(args.trained, RECORD_FILE, "train step")
        conversion = read_record(args.converted, CONVERSION_FILE, "convert step")
        converted = required_file(args.converted, MODEL_FILE, "convert step")
        onnx_model = onnx.load(converted)
        evaluate_and_document(
            onnx_model,
            converted,
            args.out,
            mnist=load_data(args.data),
            training=training,
            conversion=conversion,
            version=version,
            source=args.source_commit,
            min_accuracy=args.min_accuracy,
            feedback_held_out=read_held_out(args.trained, training),
        )

    return run_step("evaluate", step, (DatasetError, BelowFloor))


if __name__ == "__main__":
    sys.exit(main())
