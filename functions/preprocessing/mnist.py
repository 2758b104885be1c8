"""From ink to the model's 28x28 input, as MNIST itself was made (contracts.md section 5).

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
"""

from __future__ import annotations

import math

import numpy as np

FIELD_SIZE = 28
BOX_SIZE = 20  # MNIST fits each digit into a 20x20 box inside the 28x28 field
CENTRE = 14.0  # where the centre of mass goes, in pixel-index coordinates (row, column)
EMPTY_THRESHOLD = 0.05  # ink at or below this is paper: it decides "empty" and the bounding box
LIGHT_BACKGROUND = 0.5  # border luminance at or above this means dark ink on light paper
TRANSPARENT_BACKGROUND = 0.5  # border opacity (median alpha / 255) below this: alpha is the ink
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601, as in the JS
# Luminance of a grey level v, computed as the JS does for r = g = b = v (so not exactly v/255).
GREY_LUMINANCE = (
    (np.arange(256) * LUMA_WEIGHTS[0] + np.arange(256) * LUMA_WEIGHTS[1])
    + np.arange(256) * LUMA_WEIGHTS[2]
) / 255.0


# --- step 1: ink -------------------------------------------------------------------------------


def ink_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """HxWx4 uint8 RGBA -> HxW float32 ink in 0..1 (see the module's step 1)."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected an HxWx4 uint8 array, got {rgba.shape} {rgba.dtype}")
    return ink_from_channels(rgba[:, :, :3], rgba[:, :, 3])


def ink_from_channels(colour: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Step 1 from HxW grey or HxWx3 colour values and HxW alpha (None: opaque), all uint8: a
    grey picture gives the very ink of its RGBA twin, without the RGBA copy."""
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


# --- steps 2 to 7: the 28x28 field -------------------------------------------------------------


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
