"""Step 1, train: MNIST in, the Keras model and its training record out.

python -m conversion.steps.train --data mnist.npz --out build/steps/trained [--recipe cnn-1.1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

# Before TensorFlow is imported: it reads its log level once, at import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from conversion.data import DatasetError, Mnist, load_mnist
from conversion.steps.errors import run_step
from conversion.train import DEFAULT_RECIPE, RECIPES, TrainingResult, TrainingSettings, train

KERAS_FILE = "model.keras"
RECORD_FILE = "training.json"
log = logging.getLogger("conversion.train")


def train_model(mnist: Mnist, settings: TrainingSettings) -> tuple[TrainingResult, dict]:
    """Trains on `mnist` and returns the model with the record the report and card are made of."""
    started = time.perf_counter()
    result = train(mnist.x_train, mnist.y_train, settings)
    log.info(
        "trained: best epoch %d, validation accuracy %s",
        result.best_epoch,
        result.best_validation_accuracy or "not measured (no hold-out)",
    )
    fit_images = settings.limit or len(mnist.x_train)
    validation_images = 0
    if RECIPES[settings.recipe].hold_out:
        validation_images = min(settings.validation_size, fit_images // 5)
    record = {
        "data": {"source": mnist.source, "sha256": mnist.sha256},
        "settings": dataclasses.asdict(settings),
        "fit_images": fit_images - validation_images,
        "validation_images": validation_images,
        "best_epoch": result.best_epoch,
        "best_validation_accuracy": result.best_validation_accuracy,
        "history": result.history,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result, record


def load_data(data_path: str | None) -> Mnist:
    mnist = load_mnist(data_path)
    log.info(
        "data: %s (%d training, %d test images)",
        mnist.source,
        len(mnist.x_train),
        len(mnist.x_test),
    )
    return mnist


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainingSettings()
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=DEFAULT_RECIPE,
        help="network and training recipe (default: %(default)s; docs/model_frontier.md)",
    )
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, help="default: the recipe's")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--limit", type=int, help="train on this many training images only")
    parser.add_argument("--no-augment", dest="augment", action="store_false")


def training_settings(args: argparse.Namespace) -> TrainingSettings:
    return TrainingSettings.for_recipe(
        args.recipe,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        augment=args.augment,
        limit=args.limit,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="mnist.npz or a folder with the IDX files ($MNIST_PATH)")
    parser.add_argument("--out", required=True, help=f"folder for {KERAS_FILE} and {RECORD_FILE}")
    add_training_arguments(parser)
    args = parser.parse_args(argv)

    def step() -> None:
        result, record = train_model(load_data(args.data), training_settings(args))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result.model.save(out / KERAS_FILE)
        (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        log.info("saved %s and %s in %s", KERAS_FILE, RECORD_FILE, out)

    return run_step("train", step, (DatasetError,))


if __name__ == "__main__":
    sys.exit(main())
