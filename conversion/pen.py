"""MNIST digits redrawn the way people draw on the site: each digit's skeleton traced with the
site's round pen (a uniform stroke, PEN_WIDTH_FRACTION of the canvas wide, edges anti-aliased)
at a random size and place on a CANVAS x CANVAS drawing pad, then prepared as the site and the
server prepare a drawing (functions/preprocessing/mnist.py; static-web/js/preprocess.js computes the
same floats, golden files hold the two together).

The pipeline measures the model on such drawings of MNIST test digits (the "pen" figures of the
report); tests/site/test_site_accuracy.py draws the same way and prepares them with the site's
JavaScript itself. Training may add pen-drawn MNIST training digits (never test digits), so that
a uniform stroke is nothing the model can take for "not a digit".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.morphology import skeletonize

from functions.preprocessing.mnist import to_mnist

REPO_ROOT = Path(__file__).resolve().parent.parent
DRAWING_PAD = REPO_ROOT / "static-web" / "js" / "drawing-pad.js"
CANVAS = 280
SIZES = (0.25, 0.90)  # the digit's longer side, as a fraction of the canvas
# The drawing pad's PEN_WIDTH_FRACTION, used when its source is not at hand (an Azure ML code
# snapshot holds conversion/ only); pen_width_fraction() reads the site's own value.
DEFAULT_PEN_WIDTH_FRACTION = 0.06
PEN_SEED = 20261127  # the site test's seed: the pipeline's pen digits are the test's


def pen_width_fraction() -> float:
    """The site's PEN_WIDTH_FRACTION (static-web/js/drawing-pad.js), else the default."""
    try:
        source = DRAWING_PAD.read_text(encoding="utf-8")
    except OSError:
        return DEFAULT_PEN_WIDTH_FRACTION
    found = re.search(r"PEN_WIDTH_FRACTION = ([\d.]+);", source)
    return float(found.group(1)) if found else DEFAULT_PEN_WIDTH_FRACTION


def cropped(digit: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(digit.any(axis=1))
    columns = np.flatnonzero(digit.any(axis=0))
    return digit[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def resized(digit: np.ndarray, longer_side: float) -> np.ndarray:
    """The digit's ink box scaled so its longer side is `longer_side` px, aspect kept."""
    ink = cropped(digit)
    scale = longer_side / max(ink.shape)
    height, width = (max(1, round(side * scale)) for side in ink.shape)
    return np.asarray(Image.fromarray(ink).resize((width, height), Image.BILINEAR))


def placed(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 ink at a random position on an empty canvas."""
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    top, left = (rng.integers(0, CANVAS - side + 1) for side in ink.shape)
    canvas[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return canvas


def pen_stroke(skeleton: np.ndarray, pen_width: float) -> np.ndarray:
    """A boolean skeleton traced with a round pen of `pen_width` px, edges anti-aliased: uint8."""
    distance = ndimage.distance_transform_edt(~skeleton)
    coverage = np.clip(pen_width / 2 + 0.5 - distance, 0.0, 1.0)
    return np.round(coverage * 255).astype(np.uint8)


def redrawn_with_pen(digit: np.ndarray, longer_side: float, pen_width: float) -> np.ndarray:
    """The digit's skeleton traced with a round pen of `pen_width` px, edges anti-aliased."""
    return pen_stroke(skeletonize(resized(digit, longer_side) > 127), pen_width)


def pen_inks(
    digits: Iterable[np.ndarray], rng: np.random.Generator, pen_width: float
) -> Iterator[np.ndarray]:
    """Each digit redrawn with the pen at a random size and place on the canvas (uint8 ink)."""
    for digit in digits:
        yield placed(redrawn_with_pen(digit, rng.uniform(*SIZES) * CANVAS, pen_width), rng)


def prepared(ink: np.ndarray) -> np.ndarray:
    """A canvas's uint8 ink as the service sees it: the site's preprocessing, 28x28 float32
    0..255 (zeros for an empty canvas)."""
    field = to_mnist(ink.astype(np.float32) / np.float32(255.0))
    return np.zeros((28, 28), np.float32) if field is None else field


def pen_digits(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int = PEN_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """`count` of `images` (chosen with `seed`), redrawn with the site's pen and prepared as the
    site prepares a drawing: (count, 28, 28) float32 0..255 and their labels."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(labels), size=min(count, len(labels)), replace=False)
    pen_width = pen_width_fraction() * CANVAS
    fields = [prepared(ink) for ink in pen_inks(images[chosen], rng, pen_width)]
    return np.stack(fields).astype(np.float32), labels[chosen].astype(np.int64)
