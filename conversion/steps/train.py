"""Step 1, train: MNIST (and, optionally, people's corrections) in, the Keras model and its
training record out; with corrections, also the held-out part of them for the evaluate step.

python -m conversion.steps.train --data mnist.npz --out build/steps/trained [--recipe cnn-1.1] \
    [--feedback feedback.jsonl | items-folder | storage]
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

import numpy as np

# Before TensorFlow is imported: it reads its log level once, at import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from conversion.data import DatasetError, Mnist, load_mnist
from conversion.feedback import (
    FEEDBACK_ENV,
    HELD_OUT_FILE,
    NOT_DIGIT_LABEL,
    STORAGE,
    Feedback,
    FeedbackError,
    load_feedback,
    no_feedback_record,
    repeat_factor,
    save_held_out,
)
from conversion.steps.errors import run_step, step_parser
from conversion.train import DEFAULT_RECIPE, RECIPES, TrainingResult, TrainingSettings, train
from functions.model_contract import NOT_DIGIT_NAME

KERAS_FILE = "model.keras"
RECORD_FILE = "training.json"
log = logging.getLogger("conversion.train")


def train_model(
    mnist: Mnist, settings: TrainingSettings, feedback: Feedback | None = None
) -> tuple[TrainingResult, dict]:
    """Trains on `mnist`, with the training part of `feedback` added, and returns the model
    with the record the report and card are made of."""
    started = time.perf_counter()
    fit_images = min(settings.limit or len(mnist.x_train), len(mnist.x_train))
    validation_images = 0
    if RECIPES[settings.recipe].hold_out:
        validation_images = min(settings.validation_size, fit_images // 5)
    extra, feedback_record = None, no_feedback_record()
    if feedback is not None:
        feedback = feedback.within_share(fit_images - validation_images)
        repeat = repeat_factor(len(feedback.training), fit_images - validation_images)
        images, labels = feedback.training_arrays()
        if not RECIPES[settings.recipe].not_digit:  # a ten-class network cannot learn them
            digits = labels != NOT_DIGIT_LABEL
            images, labels = images[digits], labels[digits]
        extra = (np.repeat(images, repeat, axis=0), np.repeat(labels, repeat, axis=0))
        feedback_record = feedback.record(repeat)
        log.info(
            "feedback: %d items, each %d times, added to %d MNIST images",
            len(images),
            repeat,
            fit_images - validation_images,
        )
    result = train(mnist.x_train, mnist.y_train, settings, extra)
    log.info(
        "trained: best epoch %d, validation accuracy %s",
        result.best_epoch,
        result.best_validation_accuracy or "not measured (no hold-out)",
    )
    record = {
        "data": {"source": mnist.source, "sha256": mnist.sha256},
        "settings": dataclasses.asdict(settings),
        "fit_images": fit_images - validation_images,  # MNIST's; feedback's are counted apart
        "validation_images": validation_images,
        "feedback": feedback_record,
        "additions": result.additions,
        "is_digit_rule": is_digit_rule(settings),
        "best_epoch": result.best_epoch,
        "best_validation_accuracy": result.best_validation_accuracy,
        "history": result.history,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result, record


def is_digit_rule(settings: TrainingSettings) -> str | None:
    """The rule the model's metadata will declare (functions/model_contract.py DigitRule):
    a recipe with the eleventh class says a digit is what its not_digit output puts under the
    recipe's threshold; a ten-class recipe declares none."""
    recipe = RECIPES[settings.recipe]
    if not recipe.not_digit:
        return None
    return f"{NOT_DIGIT_NAME} < {recipe.not_digit_threshold:g}"


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
        "--feedback",
        help="people's corrections to add to the training data: a JSON Lines export, a folder "
        f"of item files, or {STORAGE!r} for the feedback container (default: ${FEEDBACK_ENV}, "
        "else none; docs/contracts.md section 2a)",
    )
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
    parser = step_parser(__doc__)
    parser.add_argument("--data", help="mnist.npz or a folder with the IDX files ($MNIST_PATH)")
    parser.add_argument("--out", required=True, help=f"folder for {KERAS_FILE} and {RECORD_FILE}")
    add_training_arguments(parser)
    args = parser.parse_args(argv)

    def step() -> None:
        mnist = load_data(args.data)
        feedback = load_feedback(args.feedback)
        result, record = train_model(mnist, training_settings(args), feedback)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result.model.save(out / KERAS_FILE)
        (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if feedback is not None:  # the evaluate step measures the model on it
            save_held_out(feedback, out)
            log.info("saved %s in %s", HELD_OUT_FILE, out)
        log.info("saved %s and %s in %s", KERAS_FILE, RECORD_FILE, out)

    return run_step("train", step, (DatasetError, FeedbackError))


if __name__ == "__main__":
    sys.exit(main())
