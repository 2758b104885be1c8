"""Pictures the preprocessing tests share: drawings as RGBA, and the golden files."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import numpy as np

from tests.stack import REPO_ROOT

GOLDEN_DIR = REPO_ROOT / "tests" / "golden" / "preprocessing"
GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.json"))


def opaque(grey: np.ndarray) -> np.ndarray:
    return np.dstack([grey, grey, grey, np.full_like(grey, 255)])


def transparent(ink: np.ndarray) -> np.ndarray:
    """Black ink whose alpha carries the drawing, on a fully transparent background."""
    return np.dstack([np.zeros_like(ink)] * 3 + [ink])


def drawing(height: int = 150, width: int = 200) -> np.ndarray:
    """uint8 ink (255 = ink): an off-centre L, 60 px tall and 30 px wide, no anti-aliasing."""
    ink = np.zeros((height, width), dtype=np.uint8)
    ink[30:90, 120:128] = 255
    ink[82:90, 120:150] = 255
    return ink


def load_golden(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case["rgba_encoding"] == "zlib+base64"
    raw = zlib.decompress(base64.b64decode(case["rgba"]))
    rgba = np.frombuffer(raw, dtype=np.uint8).reshape(case["height"], case["width"], 4)
    expected = case["expected"]
    return rgba, None if expected is None else np.asarray(expected, dtype=np.float32)
