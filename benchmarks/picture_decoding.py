"""What the worst pictures the API accepts cost to prepare: peak memory and time, one per process.

    .venv/bin/python -m benchmarks.picture_decoding [--json FILE] [--before DIR]

With --before, the same pictures are also prepared by the code of another checkout (such as
`git worktree add DIR HEAD~1`), in the same run, for a before/after comparison.

Each picture is made at the largest size the limits in functions/preprocessing/pictures.py
accept (a digit on paper, so it is a real prediction, not an empty one) and prepared by
`preprocess_image_bytes` in a fresh interpreter; the figures are that process's peak RSS
(VmHWM, reset just before the call) above its RSS just before the call, and the call's wall
time. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from functions.preprocessing import pictures

ROOT = Path(__file__).resolve().parent.parent

MEASURE = """
import gc, sys, time
try:
    from functions.preprocessing.pictures import preprocess_image_bytes
except ImportError:  # --before: a checkout from before preprocessing was a package
    from functions.preprocessing import preprocess_image_bytes

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
gc.collect()
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the peak (VmHWM) starts again from the RSS of now
before = status_kb("VmRSS")
started = time.perf_counter()
result = preprocess_image_bytes(data)
elapsed = time.perf_counter() - started
print((status_kb("VmHWM") - before) * 1024, elapsed, result is not None)
"""


def largest_size(max_pixels: int, max_side: int, aspect: float) -> tuple[int, int]:
    """The largest width x height of this aspect (width / height) within both limits."""
    height = min(math.isqrt(int(max_pixels / aspect)), max_side)
    width = min(int(height * aspect), max_side)
    while width * height > max_pixels:
        height -= 1
    return width, height


def digit_on_paper(size: tuple[int, int], mode: str) -> Image.Image:
    """A thick dark "7" over a third of a light, slightly noisy page (noise defeats the PNG
    filter's best case, as a photo of paper would)."""
    width, height = size
    page = Image.new("L", size, 235)
    draw = ImageDraw.Draw(page)
    left, top, span = width // 3, height // 3, min(width, height) // 3
    pen = max(4, span // 12)
    draw.line((left, top, left + span, top), fill=20, width=pen)
    draw.line((left + span, top, left + span // 3, top + span), fill=20, width=pen)
    noise = np.random.default_rng(0).integers(0, 8, size=(height, width), dtype=np.uint8)
    grey = np.asarray(page) - noise
    if mode == "I;16":
        return Image.fromarray(grey.astype(np.uint16) * 257)
    return Image.fromarray(grey).convert(mode)


def cases() -> dict[str, bytes]:
    png_limits = (pictures.MAX_PIXELS, pictures.MAX_SIDE)
    jpeg_limits = (pictures.MAX_JPEG_PIXELS, pictures.MAX_JPEG_SIDE)
    # A progressive JPEG with full colour needs 6 bytes a pixel to decode; 1% is left for
    # blocks rounded up to 8.
    progressive_pixels = int(pictures.MAX_PROGRESSIVE_JPEG_BYTES / 6 * 0.99)
    progressive_limits = (min(jpeg_limits[0], progressive_pixels), jpeg_limits[1])
    square = largest_size(*png_limits, aspect=1.0)
    photo = largest_size(*jpeg_limits, aspect=4 / 3)
    full_colour_photo = largest_size(*progressive_limits, aspect=4 / 3)
    baseline = {"quality": 95, "subsampling": 0}
    progressive = {"quality": 95, "progressive": True}
    made = {}
    for name, mode, size, image_format, options in (
        ("png_rgba", "RGBA", square, "PNG", {}),
        ("png_rgb", "RGB", square, "PNG", {}),
        ("png_grey_16bit", "I;16", square, "PNG", {}),
        ("png_1bit", "1", square, "PNG", {}),
        ("jpeg_baseline", "RGB", photo, "JPEG", baseline),
        ("jpeg_progressive_420", "RGB", photo, "JPEG", {**progressive, "subsampling": 2}),
        (
            "jpeg_progressive_444",
            "RGB",
            full_colour_photo,
            "JPEG",
            {**progressive, "subsampling": 0},
        ),
    ):
        buffer = io.BytesIO()
        digit_on_paper(size, mode).save(buffer, format=image_format, **options)
        made[f"{name} {size[0]}x{size[1]}"] = buffer.getvalue()
    # The most arithmetic: the largest picture not reduced first, ink everywhere.
    side = pictures.WORKING_SIDE
    noise = np.random.default_rng(1).integers(0, 256, size=(side, side, 4), dtype=np.uint8)
    noise[:, :, 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    made[f"png_rgba_noise {side}x{side}"] = buffer.getvalue()
    return made


def measure(data: bytes, code_root: Path = ROOT) -> dict[str, object]:
    with tempfile.NamedTemporaryFile(suffix=".img") as file:
        file.write(data)
        file.flush()
        run = subprocess.run(  # noqa: S603 - this interpreter, this script, our own file
            [sys.executable, "-c", MEASURE, file.name],
            cwd=code_root,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    if run.returncode:
        return {"bytes": len(data), "refused": run.stderr.strip().splitlines()[-1]}
    peak, seconds, has_ink = run.stdout.split()
    return {
        "bytes": len(data),
        "peak_rss_mb": round(int(peak) / 2**20, 1),
        "seconds": round(float(seconds), 3),
        "has_ink": has_ink == "True",
    }


def report(name: str, figure: dict[str, object]) -> None:
    size = f"{name:36} {figure['bytes'] / 1024:7.0f} KB"
    if "refused" in figure:
        print(f"{size}  refused: {str(figure['refused'])[:72]}")
        return
    print(
        f"{size}  peak +{figure['peak_rss_mb']:6.1f} MB  {figure['seconds']:6.3f} s"
        f"  ink: {figure['has_ink']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--before", type=Path, help="a checkout whose code to measure too")
    arguments = parser.parse_args()
    figures: dict[str, dict[str, object]] = {}
    for name, data in cases().items():
        if arguments.before:
            figures[f"before {name}"] = measure(data, arguments.before.resolve())
            report(f"before {name}", figures[f"before {name}"])
        figures[name] = measure(data)
        report(name, figures[name])
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
