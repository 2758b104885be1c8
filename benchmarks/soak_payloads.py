"""The worst requests a stranger can send to /api/predict, built from the app's own limits.

The limits are read from the modules that enforce them (functions/api/predict_codec.py,
functions/model_contract.py and functions/preprocessing/pictures.py), never copied, so the soak
follows them when they change.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

LIMIT_NAMES = ("MAX_PIXELS", "MAX_SIDE", "MAX_IMAGE_BYTES", "MAX_JSON_BYTES", "MAX_BATCH")
LYING_LENGTH = 10 * 2**30  # a declared body of 10 GiB, of which a few KB are sent
SENT_OF_LYING_BODY = 64 * 1024
GZIP_EXPANDED_BYTES = 64 * 2**20  # about 64 KB on the wire


@dataclass(frozen=True)
class Payload:
    """One kind of request: what is sent, and whether the server may close the connection
    before reading it all (a body over the limit may be refused mid-upload)."""

    name: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None  # a Content-Length other than len(body)
    may_be_cut: bool = False

    @property
    def content_length(self) -> int:
        return len(self.body) if self.declared_length is None else self.declared_length


def app_limits() -> dict[str, int]:
    """The request limits as the app defines them now; a missing name stops the soak."""
    from functions import model_contract  # noqa: PLC0415 - the app's code, when needed
    from functions.api import predict_codec  # noqa: PLC0415
    from functions.preprocessing import pictures  # noqa: PLC0415

    limits = {}
    modules = (predict_codec, model_contract, pictures)
    for name in LIMIT_NAMES:
        module = next((m for m in modules if hasattr(m, name)), None)
        if module is None:
            raise SystemExit(
                "soak: none of functions/api/predict_codec.py, functions/model_contract.py and "
                f"functions/preprocessing/pictures.py defines {name}; update "
                "benchmarks/soak_payloads.py to the new limits"
            )
        limits[name] = int(getattr(module, name))
    return limits


def largest_side(limits: dict[str, int]) -> int:
    """The side of the largest square picture the limits let through."""
    return min(limits["MAX_SIDE"], math.isqrt(limits["MAX_PIXELS"]))


def digit_picture(side: int, image_format: str, *, sixteen_bit: bool = False) -> bytes:
    """A side x side picture of a thick dark "7" on white paper: ink, so it is decoded and
    prepared in full rather than refused as blank. Compresses to a few KB as PNG."""
    if sixteen_bit:
        canvas = np.full((side, side), 65535, dtype=np.uint16)
        top, left, stroke = side // 5, side // 4, max(1, side // 12)
        canvas[top : top + stroke, left : side - left] = 20000  # grey ink, as a scan has
        for row in range(top, side - top, max(1, stroke // 2)):
            column = side - left - (row - top) // 2
            canvas[row : row + stroke, max(0, column - stroke) : column] = 20000
        picture = Image.fromarray(canvas)
    else:
        picture = Image.new("RGB", (side, side), "white")
        draw = ImageDraw.Draw(picture)
        width = max(1, side // 12)
        draw.line(
            [(side // 4, side // 5), (3 * side // 4, side // 5), (side // 2, 4 * side // 5)],
            fill="black",
            width=width,
        )
    buffer = io.BytesIO()
    options = {"quality": 90} if image_format == "JPEG" else {"compress_level": 9}
    picture.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _greyscale_png(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + extra
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def pixel_bomb(limits: dict[str, int]) -> bytes:
    """A complete PNG of four times the pixel limit, within the side limit: tens of KB that
    would inflate to tens of MB (and an RGBA copy four times that)."""
    side = min(limits["MAX_SIDE"], 2 * math.isqrt(limits["MAX_PIXELS"]))
    if side * side <= limits["MAX_PIXELS"]:  # the side limit is the tighter one
        side = limits["MAX_SIDE"] + 1
    row = b"\x00" * (side + 1)  # filter byte + one row of black
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return _greyscale_png(side, side, idat)


def header_bomb() -> bytes:
    """A PNG that declares 65535 x 65535 pixels (4 G) and carries two rows of them."""
    side = 65535
    return _greyscale_png(side, side, zlib.compress(b"\x00" * (side + 1) * 2, 9))


def text_chunk_bomb() -> bytes:
    """A small valid PNG with a zTXt chunk that inflates to 64 MiB."""
    side = 64
    text = b"Comment\x00\x00" + zlib.compress(b"\x00" * 64 * 2**20, 9)
    pixels = zlib.compress((b"\x00" + b"\xff" * side) * side, 9)
    return _greyscale_png(side, side, pixels, extra=_png_chunk(b"zTXt", text))


def max_json_batch(limits: dict[str, int], seed: int = 0) -> bytes:
    """MAX_BATCH images of long floats, padded with whitespace to exactly MAX_JSON_BYTES."""
    images = np.random.default_rng(seed).uniform(0, 255, (limits["MAX_BATCH"], 784))
    body = json.dumps({"images": images.tolist()}).encode()
    decimals = 17
    while len(body) > limits["MAX_JSON_BYTES"] and decimals > 0:
        decimals -= 1  # shorter numbers until the batch fits the limit
        body = json.dumps({"images": np.round(images, decimals).tolist()}).encode()
    return body + b" " * (limits["MAX_JSON_BYTES"] - len(body))


def gzip_body() -> bytes:
    """A valid single-image JSON body padded with whitespace, gzipped: 64 MiB from 64 KB."""
    document = json.dumps({"pixels": [0] * 784}).encode()
    return gzip.compress(document + b" " * (GZIP_EXPANDED_BYTES - len(document)), 9)


def hostile_payloads(limits: dict[str, int]) -> list[Payload]:
    """Bombs and bodies that must be refused at a bounded cost."""
    png = {"Content-Type": "image/png"}
    json_type = {"Content-Type": "application/json"}
    return [
        Payload("png pixel bomb", pixel_bomb(limits), png),
        Payload("png header bomb", header_bomb(), png),
        Payload("png zTXt bomb", text_chunk_bomb(), png),
        Payload(
            "lying Content-Length",
            b" " * SENT_OF_LYING_BODY,
            json_type,
            declared_length=LYING_LENGTH,
            may_be_cut=True,
        ),
        Payload(
            "body 2x the limit",
            b"\x00" * (2 * limits["MAX_IMAGE_BYTES"]),
            png,
            may_be_cut=True,
        ),
        Payload("gzip body", gzip_body(), {**json_type, "Content-Encoding": "gzip"}),
        Payload("json max batch", max_json_batch(limits), json_type),
    ]
