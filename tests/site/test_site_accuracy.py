"""The site's preprocessing, measured: MNIST test digits drawn onto a 280 px canvas the way people
draw on the site, put through static-web/js/preprocess.js (in node) and the bundled model.

- placed: each digit at a random size (25-90% of the canvas) and position;
- pen: each digit redrawn along its skeleton with the site's fixed-width pen;
- naive: the placed canvases shrunk whole to 28x28 by area averaging (the earlier site's way),
  which must come out far lower: it shows that the figures can tell a broken preprocessing from
  a good one.

The figures are printed (pytest -s) and written to test-artifacts/site-accuracy.json.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterable, Iterator

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conversion.pen import CANVAS, SIZES, pen_inks, placed, resized
from conversion.pen import pen_width_fraction as site_pen_width_fraction
from functions.model_contract import digit_rule, run_inference
from tests.stack import REPO_ROOT

BATCH_SCRIPT = REPO_ROOT / "tests" / "js" / "preprocess_batch.mjs"
MODEL = REPO_ROOT / "functions" / "model" / "model.onnx"
ARTIFACT = REPO_ROOT / "test-artifacts" / "site-accuracy.json"

SEED = 20261127
DIGITS = 2000
FIELD = 28
__all__ = ["CANVAS", "SIZES", "pen_canvases", "placed", "resized", "site_pen_width_fraction"]


def pen_canvases(
    digits: Iterable[np.ndarray], rng: np.random.Generator, pen_width: float
) -> Iterator[np.ndarray]:
    """Each digit redrawn with the pen at a random size and place (conversion/pen.py), as the
    site's canvas holds a drawing (ink in alpha)."""
    for ink in pen_inks(digits, rng, pen_width):
        yield as_rgba(ink, "transparent")


def as_rgba(ink: np.ndarray, style: str) -> np.ndarray:
    """A canvas as the browser holds it: ink in alpha, or opaque in either polarity."""
    zeros = np.zeros_like(ink)
    opaque = np.full_like(ink, 255)
    if style == "transparent":
        return np.dstack([zeros, zeros, zeros, ink])
    grey = 255 - ink if style == "black_on_white" else ink
    return np.dstack([grey, grey, grey, opaque])


def whole_canvas_shrunk(ink: np.ndarray) -> np.ndarray:
    """The earlier site's preprocessing: the whole canvas area-averaged down to 28x28."""
    block = CANVAS // FIELD
    return ink.reshape(FIELD, block, FIELD, block).mean(axis=(1, 3))


def preprocess_in_node(canvases: Iterable[np.ndarray]) -> np.ndarray:
    """Stream RGBA canvases through the site's preprocessing; (N, 28, 28), NaN where empty."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (Node.js 20) is needed to run the site's JavaScript")
    process = subprocess.Popen(
        [node, str(BATCH_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    feeding_errors: list[BaseException] = []

    def feed() -> None:
        try:
            with process.stdin:
                process.stdin.write(struct.pack("<II", CANVAS, CANVAS))
                for canvas in canvases:
                    process.stdin.write(canvas.tobytes())
        except BaseException as error:  # re-raised in the test's thread below
            feeding_errors.append(error)

    # Written from a thread while this one reads, so neither pipe fills up and blocks.
    feeder = threading.Thread(target=feed)
    feeder.start()
    output = process.stdout.read()
    feeder.join()
    assert process.wait() == 0, "the node preprocessing script failed"
    if feeding_errors:
        raise feeding_errors[0]
    return np.frombuffer(output, dtype="<f4").reshape(-1, FIELD, FIELD)


def read(
    session: ort.InferenceSession, inputs: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """The share read right, an image the model's rule flags as not a digit counting as wrong,
    and the share flagged."""
    pixels = np.nan_to_num(inputs, nan=0.0).astype(np.float32)[..., np.newaxis]
    outputs = run_inference(session, pixels)
    metadata = {prop.key: prop.value for prop in onnx.load(MODEL).metadata_props}
    rule = digit_rule(metadata, [item.name for item in session.get_outputs()])
    kept = np.ones(len(labels), dtype=bool)
    if rule is not None:
        kept = rule.is_digit(outputs.probabilities, outputs.not_digit)
    right = (outputs.probabilities.argmax(axis=1) == labels) & kept
    return float(right.mean()), float(1.0 - kept.mean())


def accuracy(session: ort.InferenceSession, inputs: np.ndarray, labels: np.ndarray) -> float:
    return read(session, inputs, labels)[0]


@pytest.mark.slow
def test_site_preprocessing_reads_drawn_digits_like_mnist(mnist: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(SEED)
    chosen = rng.choice(len(mnist["y_test"]), size=DIGITS, replace=False)
    digits, labels = mnist["x_test"][chosen], mnist["y_test"][chosen].astype(np.int64)
    pen_width = site_pen_width_fraction() * CANVAS
    naive_inputs: list[np.ndarray] = []

    def canvases() -> Iterator[np.ndarray]:
        for digit in digits:
            ink = placed(resized(digit, rng.uniform(*SIZES) * CANVAS), rng)
            naive_inputs.append(whole_canvas_shrunk(ink))
            style = rng.choice(["transparent", "black_on_white", "white_on_black"])
            yield as_rgba(ink, style)
        yield from pen_canvases(digits, rng, pen_width)

    site_inputs = preprocess_in_node(canvases())
    assert site_inputs.shape == (2 * DIGITS, FIELD, FIELD)
    assert not np.isnan(site_inputs).any(), "the preprocessing found no ink in a drawn digit"
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    placed_right, placed_flagged = read(session, site_inputs[:DIGITS], labels)
    pen_right, pen_flagged = read(session, site_inputs[DIGITS:], labels)
    figures = {
        "placed": placed_right,
        "pen": pen_right,
        "naive_whole_canvas": accuracy(session, np.stack(naive_inputs), labels),
    }
    flagged = {"placed_flagged": placed_flagged, "pen_flagged": pen_flagged}
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(
        json.dumps(
            {
                "digits": DIGITS,
                "seed": SEED,
                "canvas": CANVAS,
                "pen_width": pen_width,
                **figures,
                **flagged,
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"\nsite accuracy on {DIGITS} MNIST test digits (a digit flagged as not a digit counts "
        "as wrong): "
        + ", ".join(f"{name} {value:.2%}" for name, value in {**figures, **flagged}.items())
    )
    assert figures["placed"] >= 0.99
    assert figures["pen"] >= 0.985
    # The earlier site's way comes out far lower on the very same canvases.
    assert figures["naive_whole_canvas"] < 0.80
    assert figures["placed"] - figures["naive_whole_canvas"] > 0.15
