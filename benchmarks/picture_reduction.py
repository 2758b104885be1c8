"""How close a large picture's answer stays when it is reduced before preprocessing.

    .venv/bin/python -m benchmarks.picture_reduction [--count 25]

MNIST test digits are drawn (dark on white, bilinear) at 8%, 25% and 70% of the height of a
4000x3000 picture, at random places, and encoded as PNG and as JPEG (quality 90). Each picture is
prepared twice: by `preprocess_image_bytes` (reduced to at most WORKING_SIDE first) and by the
exact algorithm on the fully decoded picture. Reported per size and format: the largest
difference of the 784 values (median and worst over the pictures, in grey levels of 255) and
whether the bundled model gives the same answer to both (and the right one).
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from functions.preprocessing.mnist import ink_from_rgba, to_mnist
from functions.preprocessing.pictures import preprocess_image_bytes

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("MNIST_PATH") or ROOT.parent / "shared" / "data" / "mnist.npz")
MODEL = ROOT / "functions" / "model" / "model.onnx"
SIZE = (4000, 3000)
HEIGHT_FRACTIONS = (0.08, 0.25, 0.7)


def picture(digit: np.ndarray, height_fraction: float, rng: np.random.Generator, image_format: str):
    width, height = SIZE
    side = int(height * height_fraction)
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
    page = np.full((height, width), 255, dtype=np.uint8)
    top, left = rng.integers(0, height - side), rng.integers(0, width - side)
    page[top : top + side, left : left + side] = 255 - ink
    buffer = io.BytesIO()
    options = {"quality": 90} if image_format == "JPEG" else {}
    Image.fromarray(page).convert("RGB").save(buffer, format=image_format, **options)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=25, help="digits per size and format")
    arguments = parser.parse_args()
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    with np.load(MNIST) as mnist:
        digits, labels = mnist["x_test"], mnist["y_test"]
    rng = np.random.default_rng(1)

    def answer(image: np.ndarray) -> int:
        return int(session.run(None, {"pixels": image.reshape(1, 28, 28, 1)})[0].argmax())

    for height_fraction in HEIGHT_FRACTIONS:
        for image_format in ("PNG", "JPEG"):
            differences, same, right = [], 0, 0
            for index in rng.choice(len(digits), arguments.count, replace=False):
                data = picture(digits[index], height_fraction, rng, image_format)
                reduced = preprocess_image_bytes(data)
                full = to_mnist(
                    ink_from_rgba(np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")))
                )
                differences.append(float(np.abs(reduced - full).max()))
                same += answer(reduced) == answer(full)
                right += answer(reduced) == labels[index]
            print(
                f"digit {height_fraction:4.0%} of the height, {image_format:4}: largest difference"
                f" median {np.median(differences):5.1f}, worst {max(differences):5.1f};"
                f" same answer {same}/{arguments.count}, right {right}/{arguments.count}"
            )


if __name__ == "__main__":
    main()
