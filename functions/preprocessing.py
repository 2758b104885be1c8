"""From a drawing or an uploaded picture to the model's 28x28 input, as MNIST itself was made.

The same algorithm runs in the browser (static-web/js/preprocess.js); golden files in
tests/golden/preprocessing hold both to the same result. The steps:

1. Ink as 0..1 (`ink_from_rgba`): when the picture's background is transparent (the median
   alpha of its border under one half: a canvas drawn on a transparent background) the alpha
   channel is the ink, with the border's level mapped to 0; otherwise ink is the luminance,
   inverted when the picture's border is light, with the border's level mapped to 0 (grey
   paper is background). A stray translucent pixel in an opaque picture changes nothing.
2. Nothing above `EMPTY_THRESHOLD` -> empty (None): no prediction is asked for.
3. Crop to the bounding box of the ink above `EMPTY_THRESHOLD`.
4. Scale the longer side to 20 px, keeping the aspect ratio, by exact area averaging (each
   output pixel is the coverage-weighted mean of the source pixels under it).
5. Paste into a 28x28 field at offset floor((28 - size) / 2).
6. Shift by whole pixels so the centre of mass lands on (14, 14) in pixel-index coordinates;
   what falls off the edge is dropped.
7. Scale to 0..255, float32.

Parity with JavaScript: every sum is taken left to right in the same order as the JS loops
(never numpy's pairwise `sum`), rounding is floor(x + 0.5) in both, the ink is float32 (the JS
`Float32Array`) and all arithmetic after it is float64.

Uploaded pictures (`preprocess_image_bytes`) are bounded before they are decoded (pixels,
sides, decoder memory) and at most `MAX_CONCURRENT_DECODES` are decoded at once. A picture
whose longer side is over `WORKING_SIDE` is first reduced by a whole factor (a JPEG in its
decoder, then either format by averaging blocks of pixels) to at most that side, and only then
does step 1 start. Up to that side the result is exactly what the browser computes; above it,
it is close to the full-size result but not the same (docs/contracts.md section 5).
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

from functions.errors import DecodersBusy  # raised here; also importable from here

FIELD_SIZE = 28
BOX_SIZE = 20  # MNIST fits each digit into a 20x20 box inside the 28x28 field
CENTRE = 14.0  # where the centre of mass goes, in pixel-index coordinates (row, column)
EMPTY_THRESHOLD = 0.05  # ink at or below this is paper: it decides "empty" and the bounding box
LIGHT_BACKGROUND = 0.5  # border luminance at or above this means dark ink on light paper
TRANSPARENT_BACKGROUND = 0.5  # border opacity (median alpha / 255) below this: alpha is the ink
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601, as in the JS
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
# Luminance of a grey level v, computed as the JS does for r = g = b = v (so not exactly v/255).
GREY_LUMINANCE = (
    (np.arange(256) * LUMA_WEIGHTS[0] + np.arange(256) * LUMA_WEIGHTS[1])
    + np.arange(256) * LUMA_WEIGHTS[2]
) / 255.0

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


def ink_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """HxWx4 uint8 RGBA -> HxW float32 ink in 0..1 (see the module's step 1)."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected an HxWx4 uint8 array, got {rgba.shape} {rgba.dtype}")
    return _ink(rgba[:, :, :3], rgba[:, :, 3])


def _ink(colour: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Ink from HxW grey or HxWx3 colour values and HxW alpha (None: opaque), all uint8."""
    if alpha is not None:
        opacity = _border(alpha) / 255.0
        if _median(opacity) < TRANSPARENT_BACKGROUND:
            return _ink_from_alpha(alpha)
    return _ink_from_luminance(colour).astype(np.float32)


def _ink_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Opacity is the ink, whatever the colour; the background's own opacity counts as none."""
    ink = alpha / 255.0
    background = _median(_border(ink))
    ink -= background
    ink /= 1.0 - background
    return np.clip(ink, 0.0, 1.0, out=ink).astype(np.float32)


def _ink_from_luminance(colour: np.ndarray) -> np.ndarray:
    """Ink from an opaque picture; the background level is the median luminance of its border.

    On a light background the ink is the darkness (1 - L), on a dark one the lightness (L).
    The background's own ink level is then subtracted and the rest stretched back to 0..1,
    so grey paper counts as no ink at all.
    """
    luminance = _luminance(colour)
    background = _median(_border(luminance))
    ink = luminance  # worked on in place: no second full-size float64 copy
    if background >= LIGHT_BACKGROUND:
        np.subtract(1.0, luminance, out=ink)
        background_ink = 1.0 - background
    else:
        background_ink = background
    ink -= background_ink
    ink /= 1.0 - background_ink
    return np.clip(ink, 0.0, 1.0, out=ink)


def _luminance(colour: np.ndarray) -> np.ndarray:
    """(0.299 R + 0.587 G + 0.114 B) / 255 in float64, added in the JS's order, in place."""
    if colour.ndim == 2:  # grey: the same floats, looked up
        return GREY_LUMINANCE[colour]
    luminance = np.multiply(colour[:, :, 0], LUMA_WEIGHTS[0], dtype=np.float64)
    term = np.empty_like(luminance)
    for channel in (1, 2):
        np.multiply(colour[:, :, channel], LUMA_WEIGHTS[channel], out=term)
        luminance += term
    luminance /= 255.0
    return luminance


def _border(values: np.ndarray) -> np.ndarray:
    """The pixels of the outermost rows and columns, each once."""
    on_border = np.zeros(values.shape, dtype=bool)
    on_border[[0, -1], :] = True
    on_border[:, [0, -1]] = True
    return values[on_border]


def _median(values: np.ndarray) -> float:
    """The median, spelt out so the JS computes the very same float."""
    ordered = np.sort(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return float((ordered[middle - 1] + ordered[middle]) / 2.0)


def image_bytes_to_ink(data: bytes) -> np.ndarray:
    """Decode a PNG or JPEG (EXIF orientation applied) into HxW float32 ink in 0..1; a picture
    over `WORKING_SIDE` comes back reduced. Raises DecodersBusy when no decode slot frees up."""
    with _decode_slot():
        return _ink(*_decode(data))


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


def to_mnist(ink: np.ndarray) -> np.ndarray | None:
    """HxW ink in 0..1 -> 28x28 float32 in 0..255 centred as MNIST; None when nothing is drawn."""
    ink = np.asarray(ink)
    if ink.ndim != 2:
        raise ValueError(f"expected an HxW array, got shape {ink.shape}")
    # A float64 threshold compares float32 ink in float64, as JS does (a plain 0.05 would not).
    inked = ink > np.float64(EMPTY_THRESHOLD)
    if not inked.any():
        return None
    digit = _fit_in_box(_crop_to_ink(ink, inked).astype(np.float64))
    field = _paste_centred(digit)
    return (_shift_centre_of_mass(field) * 255.0).astype(np.float32)


def _crop_to_ink(ink: np.ndarray, inked: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(inked.any(axis=1))
    columns = np.flatnonzero(inked.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def _fit_in_box(crop: np.ndarray) -> np.ndarray:
    """Scale so the longer side is BOX_SIZE, the shorter in proportion (at least 1 px)."""
    height, width = crop.shape
    longer = max(height, width)
    new_height = max(1, _round_half_up(height * BOX_SIZE / longer))
    new_width = max(1, _round_half_up(width * BOX_SIZE / longer))
    rows_scaled = _area_average_rows(crop, new_height)
    return _area_average_rows(rows_scaled.T, new_width).T


def _area_average_rows(values: np.ndarray, new_rows: int) -> np.ndarray:
    """Resample axis 0 to `new_rows` by exact area averaging (a box filter).

    Output row i covers source rows [i * n / new_rows, (i + 1) * n / new_rows); each source row
    counts with the length of its overlap with that span. Works for shrinking and enlarging.
    """
    rows = values.shape[0]
    result = np.empty((new_rows, values.shape[1]), dtype=np.float64)
    for i in range(new_rows):
        start, end = i * rows / new_rows, (i + 1) * rows / new_rows
        total = np.zeros(values.shape[1], dtype=np.float64)
        for k in range(math.floor(start), min(math.ceil(end), rows)):
            overlap = min(k + 1.0, end) - max(float(k), start)
            total = total + overlap * values[k]
        result[i] = total / (end - start)
    return result


def _paste_centred(digit: np.ndarray) -> np.ndarray:
    height, width = digit.shape
    top, left = (FIELD_SIZE - height) // 2, (FIELD_SIZE - width) // 2
    field = np.zeros((FIELD_SIZE, FIELD_SIZE), dtype=np.float64)
    field[top : top + height, left : left + width] = digit
    return field


def _shift_centre_of_mass(field: np.ndarray) -> np.ndarray:
    """Move the field by whole pixels so its centre of mass lands on (CENTRE, CENTRE)."""
    row_of_mass, column_of_mass = _centre_of_mass(field)
    return _shifted(
        field,
        _round_half_up(CENTRE - row_of_mass),
        _round_half_up(CENTRE - column_of_mass),
    )


def _centre_of_mass(field: np.ndarray) -> tuple[float, float]:
    rows, columns = np.indices(field.shape, dtype=np.float64)
    mass = _sum_left_to_right(field)
    return (
        _sum_left_to_right(rows * field) / mass,
        _sum_left_to_right(columns * field) / mass,
    )


def _sum_left_to_right(values: np.ndarray) -> float:
    """Row-major running sum, the order of the JS loop (np.sum adds pairwise, a different float)."""
    return float(np.cumsum(values, axis=None)[-1])


def _shifted(field: np.ndarray, down: int, right: int) -> np.ndarray:
    """`field` moved by whole pixels; what leaves the field is dropped, what enters is 0."""
    size = field.shape[0]
    moved = np.zeros_like(field)
    source = (
        slice(max(0, -down), min(size, size - down)),
        slice(max(0, -right), min(size, size - right)),
    )
    target = (
        slice(max(0, down), min(size, size + down)),
        slice(max(0, right), min(size, size + right)),
    )
    moved[target] = field[source]
    return moved


def _round_half_up(value: float) -> int:
    """floor(x + 0.5): the same in Python and JS (Python's round() rounds halves to even)."""
    return math.floor(value + 0.5)


def preprocess_image_bytes(data: bytes) -> np.ndarray | None:
    """PNG/JPEG bytes -> 28x28 float32 in 0..255, or None when nothing is drawn."""
    return to_mnist(image_bytes_to_ink(data))
