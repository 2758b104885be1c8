"""The feedback loop, run end to end offline (docs/benchmarks.md, Feedback): MNIST *training*
digits redrawn with the site's pen at random sizes and places, prepared by the site's own
JavaScript, and read by the bundled model; each one it reads wrong becomes a correction, stored
as the endpoint stores it (a JSON Lines export). A model is trained with them
(`conversion.pipeline --feedback`), and the two models are compared on the held-out corrections
and on MNIST *test* digits redrawn with the site's pen.

    .venv/bin/python -m benchmarks.feedback_loop --digits 20000 --epochs 15
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.serving import ROOT
from conversion.feedback import load_feedback
from conversion.pen import CANVAS
from conversion.pen import pen_width_fraction as site_pen_width_fraction
from functions.clock import utc_now
from functions.feedback.item import FeedbackItem, stored_document
from functions.serving.provider import BUNDLED_MODEL
from tests.site.test_site_accuracy import pen_canvases, preprocess_in_node

MNIST = ROOT.parent / "shared" / "data" / "mnist.npz"
SEED = 20261204
TEST_DIGITS = 2000


def drawn_with_the_site_pen(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 28, 28) model inputs: each digit traced with the site's pen on the site's canvas and
    prepared by static-web/js/preprocess.js."""
    canvases = pen_canvases(digits, rng, site_pen_width_fraction() * CANVAS)
    return np.nan_to_num(preprocess_in_node(canvases), nan=0.0)


def answers(model: Path, inputs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    batches = np.array_split(inputs.astype(np.float32)[..., np.newaxis], max(1, len(inputs) // 256))
    return np.concatenate(
        [session.run(["probabilities"], {"pixels": batch})[0].argmax(axis=1) for batch in batches]
    )


def corrections(inputs: np.ndarray, labels: np.ndarray, predicted: np.ndarray) -> list[dict]:
    """What people would send: each wrong answer with its right digit, in the stored form."""
    version = json.loads((BUNDLED_MODEL.parent / "report.json").read_text())["metadata"]["version"]
    received_at = utc_now()
    return [
        stored_document(
            FeedbackItem(np.rint(image).astype(np.uint8), int(label), int(guess), version),
            received_at,
        )
        for image, label, guess in zip(inputs, labels, predicted, strict=True)
        if label != guess and image.any()
    ]


def trained(out: Path, epochs: int, feedback: Path | None, reuse: bool) -> Path:
    """The default recipe for `epochs`, with or without the corrections; its folder."""
    if reuse and (out / "model.onnx").exists():
        return out
    command = [
        *(sys.executable, "-m", "conversion.pipeline", "--data", str(MNIST), "--out", str(out)),
        *("--epochs", str(epochs), "--version", "mnist-cnn-feedback-loop"),
        *(("--feedback", str(feedback)) if feedback else ("--feedback", "")),
    ]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "train.log").open("w") as log:
        subprocess.run(command, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own pipeline
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, default=20000, help="MNIST training digits drawn")
    parser.add_argument("--epochs", type=int, default=15, help="of the default recipe")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "feedback-loop")
    parser.add_argument("--reuse", action="store_true", help="keep models already trained")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    with np.load(MNIST) as data:
        x_train, y_train = data["x_train"][: args.digits], data["y_train"][: args.digits]
        chosen = rng.choice(len(data["y_test"]), size=TEST_DIGITS, replace=False)
        x_test, y_test = data["x_test"][chosen], data["y_test"][chosen]

    drawn = drawn_with_the_site_pen(x_train, rng)
    items = corrections(drawn, y_train, answers(BUNDLED_MODEL, drawn))
    export = args.out / "feedback.jsonl"
    export.write_text("".join(json.dumps(item) + "\n" for item in items))
    print(f"{len(items)} corrections from {args.digits} drawn training digits -> {export}")

    # The same recipe and epochs without the corrections: what they add, and nothing else.
    models = {
        "bundled": BUNDLED_MODEL.parent,
        "without_feedback": trained(args.out / "without", args.epochs, None, args.reuse),
        "with_feedback": trained(args.out / "with", args.epochs, export, args.reuse),
    }
    held_out_images, held_out_labels = load_feedback(str(export)).held_out_arrays()
    test_drawn = drawn_with_the_site_pen(x_test, rng)
    figures = {
        "drawn_training_digits": args.digits,
        "corrections": len(items),
        "epochs": args.epochs,
        "feedback": json.loads((models["with_feedback"] / "report.json").read_text())["feedback"],
        "models": {
            name: {
                "held_out_corrections": float(
                    (answers(folder / "model.onnx", held_out_images) == held_out_labels).mean()
                ),
                "mnist_test": json.loads((folder / "report.json").read_text())["evaluation"][
                    "test_accuracy"
                ],
                f"site_pen_on_{TEST_DIGITS}_mnist_test_digits": float(
                    (answers(folder / "model.onnx", test_drawn) == y_test).mean()
                ),
            }
            for name, folder in models.items()
        },
    }
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
