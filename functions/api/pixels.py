"""Pixels as JSON carries them: lists of numbers, one image flat (784) or as 28 rows of 28,
checked and turned into float32, or InvalidInput naming where the wrong value is. The codecs of
`/api/predict`, V2 infer and `/api/feedback` read their pixels here, so all three take the same
values and refuse the same ones in the same words."""

from __future__ import annotations

from array import array
from itertools import chain

import numpy as np

from functions.api.request_errors import InvalidInput
from functions.model_contract import INPUT_SHAPE

PIXELS = 28 * 28
SHAPE_HINT = "784 numbers or 28 arrays of 28 numbers"
NUMBER_TYPES = {int, float}


def image_pixels(value, where: str, exact: bool) -> np.ndarray:
    """One image, either form, (28, 28, 1) float32; `exact` as json_pixels takes it."""
    return json_pixels(flat_image(value, where), where, exact=exact).reshape(INPUT_SHAPE)


def flat_image(value, where: str) -> list:
    """784 values, from either form; their types are checked in json_pixels."""
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be an array of {SHAPE_HINT}")
    if len(value) == 28 and set(map(type, value)) == {list}:
        if any(len(row) != 28 for row in value):
            lengths = sorted({len(row) for row in value})
            raise InvalidInput(f"{where} has rows of length {lengths}; expected 28 rows of 28")
        return list(chain.from_iterable(value))
    if len(value) != PIXELS:
        raise InvalidInput(f"{where} has {len(value)} items; expected {SHAPE_HINT}")
    return value


def no_booleans(body: bytes, end: int | None = None) -> bool:
    """True when the JSON in `body` (up to `end`) holds no true or false: then every int its
    parser gave is a number, and the conversions in C below, which would take a bool for 1 or 0,
    may check the types themselves."""
    return body.find(b"true", 0, end) < 0 and body.find(b"false", 0, end) < 0


def uint8_values(values: list) -> np.ndarray | None:
    """`values` as uint8 if every one is an integer 0..255, else None (a float, a value out of
    range, not a number), checked in C by bytearray(). Booleans pass as 1 and 0: only for lists
    that no_booleans cleared."""
    try:
        return np.frombuffer(bytearray(values), dtype=np.uint8)
    except (TypeError, ValueError):
        return None


def json_pixels(values: list, where: str, *, exact: bool) -> np.ndarray:
    """Flat float32 pixels from a list of JSON values, each a finite number 0..255, or
    InvalidInput naming `where`. With `exact` (see no_booleans) a conversion in C checks the
    types: uint8_values for integers 0..255, else array("d") for any number (what that buys:
    docs/benchmarks.md, "Speed tricks in the handler")."""
    if exact:
        whole = uint8_values(values)
        if whole is not None:
            return whole.astype(np.float32)
        try:
            pixels = np.frombuffer(array("d", values), dtype=np.float64)
        except (TypeError, OverflowError):
            pass  # not a number: said below
        else:
            return checked_pixels(pixels, where).astype(np.float32)
    # bool is a subclass of int, but true/false are no pixel values: compare exact types.
    if not set(map(type, values)) <= NUMBER_TYPES:
        raise InvalidInput(f"{where} holds a value that is not a number; every pixel is 0..255")
    return checked_pixels(np.array(values, dtype=np.float64), where).astype(np.float32)


def checked_pixels(pixels: np.ndarray, where: str) -> np.ndarray:
    """`pixels` if every value is a finite number 0..255; InvalidInput naming `where` if not."""
    if not np.isfinite(pixels).all():
        raise InvalidInput(f"{where} holds a NaN or infinite value; every pixel is a number 0..255")
    if pixels.min() < 0 or pixels.max() > 255:
        raise InvalidInput(f"{where} holds values outside 0..255 (background 0, ink 255)")
    return pixels
