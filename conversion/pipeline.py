"""One command: train -> convert -> verify -> evaluate, everything into one output folder.

python -m conversion.pipeline --data ../shared/data/mnist.npz --out build/model
"""

from __future__ import annotations

import argparse
import dataclasses
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

from conversion.convert import OPSET, convert_to_onnx, save, set_metadata
from conversion.data import load_mnist
from conversion.evaluate import evaluate, plot_confusion_matrix
from conversion.model_card import render_model_card
from conversion.publish import SIGNING_KEY_ENV, container, publish
from conversion.train import TrainingSettings, train
from conversion.verify import verify_against_keras

MODEL_FILE = "model.onnx"
log = logging.getLogger("conversion")


def run_pipeline(
    data_path: str | None,
    out_dir: str | os.PathLike,
    settings: TrainingSettings,
    version: str | None = None,
) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    version = version or default_version()
    started = time.perf_counter()

    mnist = load_mnist(data_path)
    log.info(
        "data: %s (%d training, %d test images)",
        mnist.source,
        len(mnist.x_train),
        len(mnist.x_test),
    )

    result = train(mnist.x_train, mnist.y_train, settings)
    log.info(
        "trained: best epoch %d, validation accuracy %.4f",
        result.best_epoch,
        result.best_validation_accuracy,
    )

    onnx_path = out / MODEL_FILE
    onnx_model = convert_to_onnx(result.model, onnx_path)
    verification = verify_against_keras(result.model, onnx_path, mnist.x_test)
    log.info("verified: ONNX agrees with Keras on %d test images", verification["images"])

    evaluation = evaluate(onnx_path, mnist.x_test, mnist.y_test)
    metadata = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "test_accuracy": f"{evaluation['test_accuracy']:.4f}",
        "training_data_sha256": mnist.sha256,
        "framework": framework_versions(),
        "source_commit": source_commit(),
    }
    set_metadata(onnx_model, metadata)
    save(onnx_model, onnx_path)
    evaluation["file_size_bytes"] = onnx_path.stat().st_size

    fit_images = settings.limit or len(mnist.x_train)
    validation_images = min(settings.validation_size, fit_images // 5)
    report = {
        "metadata": metadata,
        "data": {"source": mnist.source},
        "training": {
            "settings": dataclasses.asdict(settings),
            "fit_images": fit_images - validation_images,
            "validation_images": validation_images,
            "best_epoch": result.best_epoch,
            "best_validation_accuracy": result.best_validation_accuracy,
            "history": result.history,
        },
        "conversion": {"opset": OPSET},
        "verification": verification,
        "evaluation": evaluation,
        "pipeline_seconds": round(time.perf_counter() - started, 1),
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
    return report


def default_version() -> str:
    return "cnn-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def framework_versions() -> str:
    return (
        f"tensorflow {tf.__version__}; keras {keras.__version__}; tf2onnx {tf2onnx.__version__}; "
        f"onnx {onnx.__version__}; onnxruntime {onnxruntime.__version__}; numpy {np.__version__}"
    )


def source_commit() -> str:
    """The commit the code came from, marked "-dirty" when the work tree had changes."""
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


def main(argv: list[str] | None = None) -> int:
    defaults = TrainingSettings()
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
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--limit", type=int, help="train on this many training images only")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    publishing = parser.add_argument_group("publishing (optional last step)")
    publishing.add_argument(
        "--publish-connection-string", help="upload to incoming/ of this storage"
    )
    publishing.add_argument("--publish-account-url", help="... or of this account (Azure identity)")
    publishing.add_argument("--publish-container", default="models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = TrainingSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        augment=args.augment,
        limit=args.limit,
    )
    report = run_pipeline(args.data, args.out, settings, version=args.version)
    if args.publish_connection_string or args.publish_account_url:
        target = container(
            args.publish_connection_string, args.publish_account_url, args.publish_container
        )
        key = (os.environ.get(SIGNING_KEY_ENV) or "").encode() or None
        path = publish(
            target, (Path(args.out) / MODEL_FILE).read_bytes(), report["metadata"]["version"], key
        )
        log.info("published %s; the function app gates and promotes it", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
