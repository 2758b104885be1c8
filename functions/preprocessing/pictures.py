"""An uploaded PNG or JPEG body, decoded safely down to ink, then to the model's input.

A picture is bounded before it is decoded (pixels, sides, decoder memory, read from its header)
and at most `MAX_CONCURRENT_DECODES` are decoded at once. EXIF orientation is applied, 16-bit
grey is read by its top 8 bits, and a picture whose longer side is over `WORKING_SIDE` is first
reduced by a whole factor (a JPEG in its decoder, then either format by averaging blocks of
pixels) to at most that side; only then does the algorithm of `mnist` start. Up to that side
the result is exactly what the browser computes; above it, it is close to the full-size result
but not the same (docs/contracts.md section 5).
"""

from __future__ import annotations

import io
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from functions.preprocessing.mnist import ink_from_channels, to_mnist
from functions.serving.errors import DecodersBusy

# Limits read from the header, before any pixel is decoded. A PNG is decoded whole before it
# can be reduced: 16 Mpx is 64 MB as RGBA. A JPEG is scaled down inside the decoder (1/2, 1/4,
# 1/8), so a 24 Mpx phone photo costs less, unless it is progressive: then the decoder holds
# all of its coefficients, 2 bytes a pixel for each colour component at its sampling.
MAX_PIXELS = 16_000_000
MAX_SIDE = 8192  # a 16,000,000 x 1 picture passes the pixel count, then costs seconds
MAX_JPEG_PIXELS = 25_000_000
MAX_JPEG_SIDE = 8192
MAX_PROGRESSIVE_JPEG_BYTES = 80 * 2**20  # a 24 Mpx phone photo with 4:2:0 colour needs 72
# Larger pictures are reduced to this longer side before any arithmetic: a digit a tenth of
# the picture's height is still 150 px before the 20 px box, and the float work stays at 4 Mpx.
WORKING_SIDE = 2048
# Each decode peaks under 100 MB (python -m benchmarks.picture_decoding): four at once stay
# under 400 MB of a 2 GB instance. A request waits this long for a slot, then is turned away.
MAX_CONCURRENT_DECODES = 4
DECODE_SLOT_WAIT_SECONDS = 2.0
EXIF_ORIENTATION = 0x0112
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
ACCEPTED_FORMATS = ("PNG", "JPEG")
# Pillow opens a JPEG that carries a multi-picture (MPO) header as "MPO": a JPEG all the same.
JPEG_FORMATS = ("JPEG", "MPO")

log = logging.getLogger(__name__)
_decode_slots = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)

# Pillow inflates a PNG's text chunks while it opens it, up to 64 MiB by default. Nothing here
# reads text (an EXIF block in a text chunk is the largest use), so these documented settings
# get a small allowance, process-wide; a PNG over it is refused as damaged.
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024


class UndecodableImage(ValueError):
    """The bytes are not a PNG or JPEG picture this service can read; the message says why."""


class PictureTooLarge(UndecodableImage):
    """The picture's header announces more pixels or a longer side than is accepted."""


def preprocess_image_bytes(data: bytes) -> np.ndarray | None:
    """PNG/JPEG bytes -> 28x28 float32 in 0..255, or None when nothing is drawn."""
    return to_mnist(image_bytes_to_ink(data))


def image_bytes_to_ink(data: bytes) -> np.ndarray:
    """Decode a PNG or JPEG (EXIF orientation applied) into HxW float32 ink in 0..1; a picture
    over `WORKING_SIDE` comes back reduced. Raises DecodersBusy when no decode slot frees up."""
    with _decode_slot():
        return ink_from_channels(*_decode(data))


@contextmanager
def _decode_slot() -> Iterator[None]:
    if not _decode_slots.acquire(timeout=DECODE_SLOT_WAIT_SECONDS):
        raise DecodersBusy(
            f"all {MAX_CONCURRENT_DECODES} picture decoders stayed busy for "
            f"{DECODE_SLOT_WAIT_SECONDS:g} s"
        )
    try:
        yield
    finally:
        _decode_slots.release()


def _decode(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """(HxW grey or HxWx3 colour, HxW alpha or None), uint8, at most WORKING_SIDE a side."""
    # Messages complete "the picture cannot be decoded: ..." in the API's answer.
    if not data:
        raise UndecodableImage("it is empty (0 bytes)")
    try:
        # Image.open reads only the header: the size is checked before any pixel is decoded.
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as opened:
            _refuse_too_large(opened)
            orientation = _orientation(opened)
            if opened.format in JPEG_FORMATS:
                opened.draft(opened.mode, _draft_size(opened.size))
            image = _eight_bit(opened)
            if max(image.size) > WORKING_SIDE:
                return _reduced_channels(image, orientation)
            return _channels(_upright(image, orientation))
    except UndecodableImage:
        raise  # our own verdict, not a decoding failure to wrap
    except UnidentifiedImageError as error:
        raise UndecodableImage("it is not a PNG or JPEG picture") from error
    except Image.DecompressionBombError as error:
        too_many = (
            f"it has too many pixels; at most {MAX_PIXELS} are accepted in a PNG, "
            f"{MAX_JPEG_PIXELS} in a JPEG"
        )
        raise PictureTooLarge(too_many) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # Pillow's own message may quote the picture's bytes: it goes to the log only.
        log.info("picture not decodable: %s", error)
        raise UndecodableImage("its data is damaged or incomplete") from error


# --- limits, from the header -------------------------------------------------------------------


def _refuse_too_large(image: Image.Image) -> None:
    jpeg = image.format in JPEG_FORMATS
    max_pixels, max_side = (MAX_JPEG_PIXELS, MAX_JPEG_SIDE) if jpeg else (MAX_PIXELS, MAX_SIDE)
    width, height = image.size
    if width * height > max_pixels:
        raise PictureTooLarge(
            f"it is {width}x{height} = {width * height} pixels; at most {max_pixels} are accepted"
            f" in a {image.format}"
        )
    if max(width, height) > max_side:
        raise PictureTooLarge(f"it is {width}x{height}; each side may be at most {max_side}")
    if jpeg and image.info.get("progressive"):
        coefficients = _progressive_coefficient_bytes(image)
        if coefficients > MAX_PROGRESSIVE_JPEG_BYTES:
            raise PictureTooLarge(
                f"as a progressive JPEG of {width}x{height} it needs {coefficients >> 20} MiB to "
                f"decode; at most {MAX_PROGRESSIVE_JPEG_BYTES >> 20} MiB (save it as a baseline "
                "JPEG, or smaller)"
            )


def _progressive_coefficient_bytes(image: Image.Image) -> int:
    """A progressive JPEG is decoded from all of its DCT coefficients at once, whatever scale is
    asked for: 2 bytes for each pixel of each component at that component's sampling."""
    width, height = image.size
    layers = getattr(image, "layer", None) or [(0, 1, 1, 0)] * len(image.getbands())
    most_horizontal = max(layer[1] for layer in layers) or 1
    most_vertical = max(layer[2] for layer in layers) or 1
    total = 0
    for _, horizontal, vertical, _ in layers:
        columns = math.ceil(math.ceil(width * horizontal / most_horizontal) / 8) * 8
        rows = math.ceil(math.ceil(height * vertical / most_vertical) / 8) * 8
        total += columns * rows * 2
    return total


# --- pixels: 8 bits, upright, at most WORKING_SIDE ---------------------------------------------


def _draft_size(size: tuple[int, int]) -> tuple[int, int]:
    """The smallest size the JPEG decoder may scale down to: WORKING_SIDE on the longer side."""
    scale = min(1.0, WORKING_SIDE / max(size))
    return math.ceil(size[0] * scale), math.ceil(size[1] * scale)


def _eight_bit(image: Image.Image) -> Image.Image:
    """L, LA, RGB or RGBA with 8 bits a channel: one channel when the picture is grey, and an
    alpha channel only when it has transparency (a transparent colour in the header counts)."""
    if image.mode.startswith("I"):  # 16-bit grey: Pillow's own conversion clips it to white
        return _from_sixteen_bit(image)
    transparent = image.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info
    if image.mode in ("1", "L", "LA", "La"):
        wanted = "LA" if transparent else "L"
    else:  # RGB, P, CMYK, YCbCr
        wanted = "RGBA" if transparent else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def _from_sixteen_bit(image: Image.Image) -> Image.Image:
    """The top 8 bits of each 16-bit grey value; a transparent grey level becomes alpha."""
    values = np.asarray(image)
    if values.dtype != np.uint16:  # mode I: 32-bit, though a PNG holds at most 16
        values = np.clip(values, 0, 65535)
    grey = np.empty(values.shape, dtype=np.uint8)
    np.right_shift(values, 8, out=grey, casting="unsafe")
    transparent = image.info.get("transparency")
    if not isinstance(transparent, int):
        return Image.fromarray(grey, mode="L")
    alpha = np.multiply(values != transparent, 255, dtype=np.uint8)  # no int64 copy
    return Image.merge("LA", (Image.fromarray(grey, mode="L"), Image.fromarray(alpha, mode="L")))


def _channels(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Full size: the colour (or grey) and alpha values exactly as the browser reads them."""
    pixels = np.asarray(image)
    if image.mode == "L":
        return pixels, None
    if image.mode == "LA":
        return pixels[:, :, 0], pixels[:, :, 1]
    if image.mode == "RGBA":
        return pixels[:, :, :3], pixels[:, :, 3]
    return pixels, None


def _reduced_channels(
    image: Image.Image, orientation: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey and alpha, each averaged over blocks of pixels so the longer side is at most
    WORKING_SIDE. One band at a time: no full-size copy of the whole picture is made. The grey
    is Pillow's Rec. 601 luma in whole levels (half a level from the exact float)."""
    factor = math.ceil(max(image.size) / WORKING_SIDE)
    grey_band = image if image.mode == "L" else image.convert("L")
    grey = np.asarray(_upright(grey_band.reduce(factor), orientation))
    del grey_band
    if image.mode not in ("LA", "RGBA"):
        return grey, None
    alpha = _upright(image.getchannel("A").reduce(factor), orientation)
    return grey, np.asarray(alpha)


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation (a phone photo's "rotate 90"), read before any conversion drops it.
    A damaged EXIF block must not cost the picture: Pillow can fail on it with struct.error or
    TypeError, so only the orientation tag is read, and an unusable one is ignored."""
    try:
        return image.getexif().get(EXIF_ORIENTATION)
    except Exception:
        return None


def _upright(image: Image.Image, orientation: int | None) -> Image.Image:
    transpose = EXIF_TRANSPOSE.get(orientation)
    return image.transpose(transpose) if transpose is not None else image
