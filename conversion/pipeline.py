"""One command: train -> convert -> verify -> evaluate, everything into one output folder.

python -m conversion.pipeline --data ../shared/data/mnist.npz --out build/model [--feedback storage]

It runs, in one process, the steps that the Azure ML pipeline runs one by one
(conversion/steps/, conversion/azureml/), so both make the same files the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# Before TensorFlow is imported: it reads its log level once, at import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from conversion.data import DatasetError
from conversion.feedback import FeedbackError, load_feedback
from conversion.publish import container, publish
from conversion.steps.convert import MODEL_FILE, convert_and_verify
from conversion.steps.errors import run_step
from conversion.steps.evaluate import (
    BelowFloor,
    checked_version,
    default_version,
    evaluate_and_document,
)
from conversion.steps.train import (
    add_training_arguments,
    load_data,
    train_model,
    training_settings,
)
from conversion.train import TrainingSettings
from conversion.verify import VerificationError
from functions.settings import DEFAULT_CONTAINER, signing_key

log = logging.getLogger("conversion")


def run_pipeline(
    data_path: str | None,
    out_dir: str | os.PathLike,
    settings: TrainingSettings,
    version: str | None = None,
    *,
    min_accuracy: float = 0.0,
    feedback: str | None = None,
) -> dict:
    """Returns the report; raises BelowFloor (after writing everything) under `min_accuracy`.
    `feedback`: a source of people's corrections (conversion/feedback.py; default
    $FEEDBACK_SOURCE, else none)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    version = checked_version(version or default_version())
    mnist = load_data(data_path)
    corrections = load_feedback(feedback)
    result, training = train_model(mnist, settings, corrections)
    onnx_path = out / MODEL_FILE
    onnx_model, conversion = convert_and_verify(result.model, mnist.x_test, onnx_path)
    return evaluate_and_document(
        onnx_model,
        onnx_path,
        out,
        mnist=mnist,
        training=training,
        conversion=conversion,
        version=version,
        min_accuracy=min_accuracy,
        feedback_held_out=corrections.held_out_arrays() if corrections is not None else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        help="mnist.npz or a folder with the IDX files (default: $MNIST_PATH, "
        "else keras's download)",
    )
    parser.add_argument("--out", default="build/model", help="output folder (default: %(default)s)")
    parser.add_argument("--version", help="model version (default: cnn-<UTC timestamp>)")
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=0.0,
        help="fail under this test accuracy, as the Azure ML pipeline does (default: no floor)",
    )
    add_training_arguments(parser)
    publishing = parser.add_argument_group("publishing (optional last step)")
    publishing.add_argument(
        "--publish-connection-string", help="upload to incoming/ of this storage"
    )
    publishing.add_argument("--publish-account-url", help="... or of this account (Azure identity)")
    publishing.add_argument("--publish-container", default=DEFAULT_CONTAINER)
    args = parser.parse_args(argv)

    def all_steps() -> None:
        report = run_pipeline(
            args.data,
            args.out,
            training_settings(args),
            version=args.version,
            min_accuracy=args.min_accuracy,
            feedback=args.feedback,
        )
        if args.publish_connection_string or args.publish_account_url:
            target = container(
                args.publish_connection_string, args.publish_account_url, args.publish_container
            )
            key = signing_key()
            content = (Path(args.out) / MODEL_FILE).read_bytes()
            path = publish(target, content, report["metadata"]["version"], key)
            log.info("published %s; the function app gates and promotes it", path)

    return run_step(
        "pipeline", all_steps, (DatasetError, FeedbackError, VerificationError, BelowFloor)
    )


if __name__ == "__main__":
    sys.exit(main())
