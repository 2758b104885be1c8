"""Write the preprocessing golden files that hold the Python and JS implementations together.

Each tests/golden/preprocessing/<name>.json holds a picture and what
functions/preprocessing/mnist.py makes of it:

    {"name": str, "description": str, "width": int, "height": int,
     "rgba_encoding": "zlib+base64", "rgba": raw RGBA bytes, row-major, zlib'd then base64'd,
     "expected": 784 values (28x28 row-major, 0..255, 2 decimals) or null for "empty"}

The pictures come from MNIST test digits (keras-format npz: $MNIST_PATH, else
../shared/data/mnist.npz from the repository root) and a few drawn strokes. Everything is
deterministic; rerun after a deliberate change to the algorithm and review the diff:

    .venv/bin/python tests/golden/make_preprocessing_golden.py
"""

from __future__ import annotations

import base64
import json
import os
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from functions.preprocessing.mnist import ink_from_rgba, to_mnist  # noqa: E402

GOLDEN_DIR = Path(__file__).resolve().parent / "preprocessing"
WIDTH, HEIGHT = 200, 150
DIGIT_INDEX = 0  # the first MNIST test digit, a 7
DIGIT_SCALE = 3
DIGIT_TOP_LEFT = (55, 105)  # (row, column): well off-centre


def load_digit() -> np.ndarray:
    """The chosen MNIST test digit, 28x28 uint8 with ink 255."""
    path = os.environ.get("MNIST_PATH") or REPO_ROOT.parent / "shared" / "data" / "mnist.npz"
    with np.load(path) as mnist:
        return mnist["x_test"][DIGIT_INDEX]


def digit_ink_layer(digit: np.ndarray) -> np.ndarray:
    """HEIGHTxWIDTH uint8 ink (255 = ink): the digit enlarged smoothly and placed off-centre."""
    size = 28 * DIGIT_SCALE
    enlarged = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR))
    layer = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    top, left = DIGIT_TOP_LEFT
    layer[top : top + size, left : left + size] = enlarged
    return layer


def opaque(grey: np.ndarray) -> np.ndarray:
    """A grey uint8 picture as opaque RGBA."""
    return np.dstack([grey, grey, grey, np.full_like(grey, 255)])


def stroke_layer(width: int, height: int, line: tuple[int, int, int, int], pen: int) -> np.ndarray:
    """uint8 ink of one straight stroke, drawn with round caps."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    draw.line(line, fill=255, width=pen)
    x0, y0, x1, y1 = line
    for x, y in ((x0, y0), (x1, y1)):
        draw.ellipse((x - pen // 2, y - pen // 2, x + pen // 2, y + pen // 2), fill=255)
    return np.asarray(canvas)


def black_on_white(digit: np.ndarray) -> np.ndarray:
    return opaque(255 - digit_ink_layer(digit))


def white_on_black(digit: np.ndarray) -> np.ndarray:
    return opaque(digit_ink_layer(digit))


def transparent_black_ink(digit: np.ndarray) -> np.ndarray:
    ink = digit_ink_layer(digit)
    return np.dstack([np.zeros_like(ink)] * 3 + [ink])


def grey_paper_low_contrast(digit: np.ndarray) -> np.ndarray:
    """Pencil-grey ink (90) on grey paper (170) with a little seeded paper noise."""
    ink = digit_ink_layer(digit) / 255.0
    noise = np.random.default_rng(0).integers(-4, 5, size=ink.shape)
    grey = np.rint(170 - ink * 80 + noise).clip(0, 255).astype(np.uint8)
    return opaque(grey)


def tall_thin_stroke(_digit: np.ndarray) -> np.ndarray:
    return opaque(255 - stroke_layer(120, 160, (55, 20, 65, 140), pen=7))


def wide_short_stroke(_digit: np.ndarray) -> np.ndarray:
    return opaque(255 - stroke_layer(180, 60, (20, 28, 160, 34), pen=6))


def single_dot(_digit: np.ndarray) -> np.ndarray:
    grey = np.full((50, 50), 255, dtype=np.uint8)
    grey[30:33, 12:15] = 0
    return opaque(grey)


def opaque_with_stray_alpha(digit: np.ndarray) -> np.ndarray:
    """Black on white, opaque but for one ink pixel of alpha 254: still read by luminance."""
    rgba = black_on_white(digit).copy()
    row, column = DIGIT_TOP_LEFT[0] + 10, DIGIT_TOP_LEFT[1] + 40
    rgba[row, column, 3] = 254
    return rgba


def translucent_background(digit: np.ndarray) -> np.ndarray:
    """Alpha carries the ink over a faint (alpha 40) background, which counts as no ink."""
    ink = digit_ink_layer(digit)
    alpha = np.maximum(ink, 40).astype(np.uint8)
    return np.dstack([np.zeros_like(ink)] * 3 + [alpha])


def blank(_digit: np.ndarray) -> np.ndarray:
    return opaque(np.full((48, 64), 255, dtype=np.uint8))


CASES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "black_on_white": ("MNIST 7 enlarged 3x, off-centre, black on white", black_on_white),
    "white_on_black": ("the same digit, white on black", white_on_black),
    "transparent_black_ink": ("the same digit, alpha carries the ink", transparent_black_ink),
    "grey_paper_low_contrast": ("the same digit, grey ink on grey paper", grey_paper_low_contrast),
    "tall_thin_stroke": ("a tall thin slanted stroke, like a 1", tall_thin_stroke),
    "wide_short_stroke": ("a wide short stroke, like a dash", wide_short_stroke),
    "single_dot": ("one 3x3 dot, fills the 20x20 box", single_dot),
    "blank": ("a white canvas: empty", blank),
    "opaque_with_stray_alpha": (
        "the black-on-white digit with one pixel of alpha 254: luminance, not alpha",
        opaque_with_stray_alpha,
    ),
    "translucent_background": (
        "alpha carries the digit over a background of alpha 40: the background is no ink",
        translucent_background,
    ),
}


def golden_case(name: str, description: str, rgba: np.ndarray) -> dict[str, object]:
    result = to_mnist(ink_from_rgba(rgba))
    height, width = rgba.shape[:2]
    return {
        "name": name,
        "description": description,
        "width": width,
        "height": height,
        "rgba_encoding": "zlib+base64",
        "rgba": base64.b64encode(zlib.compress(rgba.tobytes(), 9)).decode("ascii"),
        "expected": None if result is None else [round(float(v), 2) for v in result.ravel()],
    }


def to_json(case: dict[str, object]) -> str:
    """One key per line and the expected field one image row per line, for readable diffs."""
    expected = case["expected"]
    lines = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in case.items()]
    if expected is not None:
        rows = [json.dumps(expected[start : start + 28])[1:-1] for start in range(0, 784, 28)]
        lines[-1] = '"expected": [\n  ' + ",\n  ".join(rows) + "\n ]"
    return "{\n " + ",\n ".join(lines) + "\n}\n"


def main() -> None:
    digit = load_digit()
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name, (description, draw) in CASES.items():
        case = golden_case(name, description, draw(digit))
        path = GOLDEN_DIR / f"{name}.json"
        path.write_text(to_json(case), encoding="utf-8")
        print(f"{path.relative_to(REPO_ROOT)}: {case['width']}x{case['height']}")


if __name__ == "__main__":
    main()
