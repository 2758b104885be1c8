"""What a prediction request carries: JSON pixels (three forms, or a batch) or a PNG/JPEG body,
turned into a float32 batch of shape (n, 28, 28, 1), or an error that says what to fix."""

from __future__ import annotations

from array import array
from itertools import chain
from typing import NamedTuple

import numpy as np

from functions.errors import CompressedBody, InputTooLarge, InvalidInput, UnsupportedContent
from functions.json_codec import parse_json
from functions.model_contract import INPUT_SHAPE

MAX_BATCH = 256
MAX_JSON_BYTES = 4 * 1024 * 1024  # a full batch of 256 images as JSON is about 1.5 MB
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # a phone photo
PIXELS = 28 * 28
JSON_TYPES = ("application/json",)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg")
SHAPE_HINT = "784 numbers or 28 arrays of 28 numbers"
NUMBER_TYPES = {int, float}
IDENTITY_ENCODINGS = ("", "identity")
FIELDS = frozenset({"pixels", "images"})
ONE_IMAGE = (1, *INPUT_SHAPE)


class PredictionInput(NamedTuple):
    """A NamedTuple, not a frozen dataclass: made on every request, and quicker to make."""

    images: np.ndarray  # (n, 28, 28, 1) float32, 0..255, MNIST polarity
    batch: bool  # answer with a list, even of one


def parse_prediction_input(
    content_type: str | None, body: bytes, content_encoding: str | None = None
) -> PredictionInput:
    """Raises a `functions.errors` error that says what to fix, or DecodersBusy (also one of
    them) when every picture decoder stayed taken (no fault of the request)."""
    reject_compressed(content_encoding)
    media = media_type(content_type)
    if media in IMAGE_TYPES:
        return _from_image(body)
    if is_json(media) or not media:
        return _from_json(body)
    raise UnsupportedContent(
        "this content type is not supported; send application/json, image/png or image/jpeg"
    )


def reject_compressed(content_encoding: str | None) -> None:
    """CompressedBody for a Content-Encoding other than identity: inflating is where a small
    body becomes a large one, and it is never done here."""
    if (content_encoding or "").strip().lower() not in IDENTITY_ENCODINGS:
        raise CompressedBody(
            "compressed bodies are not accepted; send the body uncompressed, without "
            "Content-Encoding"
        )


def is_json(media: str) -> bool:
    """`media` (from media_type) is JSON: application/json or any +json type."""
    return media in JSON_TYPES or media.endswith("+json")


def media_type(content_type: str | None) -> str:
    """The Content-Type without its parameters, lower-case; "" when there is none."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _from_image(body: bytes) -> PredictionInput:
    if len(body) > MAX_IMAGE_BYTES:
        raise InputTooLarge(f"the picture is over the limit of {MAX_IMAGE_BYTES} bytes")
    if not body:
        raise InvalidInput("the body is empty; send the bytes of a PNG or JPEG picture")
    # Pictures only: Pillow, which a JSON request never needs.
    from functions.preprocessing import (  # noqa: PLC0415
        PictureTooLarge,
        UndecodableImage,
        preprocess_image_bytes,
    )

    try:
        image = preprocess_image_bytes(body)
    except PictureTooLarge as error:
        raise InputTooLarge(f"the picture is too large: {error}") from error
    except UndecodableImage as error:
        raise InvalidInput(f"the picture cannot be decoded: {error}") from error
    if image is None:
        raise InvalidInput("the picture shows no ink; draw or photograph a digit")
    return PredictionInput(images=image.reshape(1, 28, 28, 1).astype(np.float32), batch=False)


def _from_json(body: bytes) -> PredictionInput:
    if len(body) > MAX_JSON_BYTES:
        raise InputTooLarge(f"the JSON body is over the limit of {MAX_JSON_BYTES} bytes")
    document = _parse_json(body)
    exact = no_booleans(body)
    if isinstance(document, list):  # the earlier system's clients send a bare array
        return _one_image(document, "the body", exact)
    if not isinstance(document, dict):
        raise InvalidInput(
            'expected a JSON object with "pixels" or "images", or an array of pixels'
        )
    if not document.keys() <= FIELDS:
        raise InvalidInput('the object has an unknown field; send only "pixels" or "images"')
    if "pixels" in document and "images" in document:
        raise InvalidInput('send either "pixels" (one image) or "images" (a batch), not both')
    if "pixels" in document:
        return _one_image(document["pixels"], "pixels", exact)
    if "images" in document:
        return PredictionInput(images=_batch(document["images"], exact), batch=True)
    raise InvalidInput('the JSON object needs a "pixels" field (one image) or "images" (a batch)')


def _parse_json(body: bytes):
    if not body or body.isspace():  # not strip(): it would copy a batch's 1.5 MB to ask
        raise InvalidInput('the body is empty; send JSON such as {"pixels": [784 numbers]}')
    return parse_json(body)


def _one_image(value, where: str, exact: bool) -> PredictionInput:
    pixels = json_pixels(_flatten(value, where), where, exact=exact)
    return PredictionInput(images=pixels.reshape(ONE_IMAGE), batch=False)


def _batch(images, exact: bool) -> np.ndarray:
    if not isinstance(images, list):
        raise InvalidInput(f'"images" must be an array of images, each {SHAPE_HINT}')
    if not images:
        raise InvalidInput('"images" is empty; send 1 to 256 images')
    if len(images) > MAX_BATCH:
        raise InvalidInput(f'"images" holds {len(images)} images; at most {MAX_BATCH} per request')
    batch = _whole_batch(images, exact)
    if batch is not None:
        return batch
    # Something is wrong, or the forms are mixed: image by image, so an error names the image.
    return np.stack(
        [image_pixels(image, f"images[{index}]", exact) for index, image in enumerate(images)]
    )


def _whole_batch(images: list, exact: bool) -> np.ndarray | None:
    """The batch checked and converted in one go when every image has the same form and
    everything is right; None otherwise. Image by image, checks and conversions cost 256 times
    their fixed overhead: as much again as the inference."""
    if set(map(type, images)) != {list}:
        return None
    lengths = set(map(len, images))
    rows = images
    if lengths == {28}:  # every image as 28 rows
        rows = list(chain.from_iterable(images))
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {28}:
            return None
    elif lengths != {PIXELS}:
        return None
    try:
        pixels = json_pixels(list(chain.from_iterable(rows)), '"images"', exact=exact)
    except InvalidInput:
        return None
    return pixels.reshape(-1, *INPUT_SHAPE)


def image_pixels(value, where: str, exact: bool) -> np.ndarray:
    """One image, (28, 28, 1) float32."""
    return json_pixels(_flatten(value, where), where, exact=exact).reshape(INPUT_SHAPE)


def no_booleans(body: bytes, end: int | None = None) -> bool:
    """True when the JSON in `body` (up to `end`) holds no true or false: then every int its
    parser gave is a number, and C conversions that would take a bool for 1 or 0 check the
    types themselves."""
    return _absent(b"true", body, end) and _absent(b"false", body, end)


def _absent(word: bytes, body: bytes, end: int | None) -> bool:
    # Pixels and our keys hold no "t" or "f": a search for one byte (memchr) answers most
    # bodies far sooner than a search for the word (docs/benchmarks.md, in process).
    return body.find(word[:1], 0, end) < 0 or body.find(word, 0, end) < 0


def uint8_values(values: list) -> np.ndarray | None:
    """`values` as uint8 if every one is an integer 0..255, else None (a float, a value out of
    range, not a number), checked in C. Booleans pass as 1 and 0: only for lists that
    no_booleans cleared. bytearray(), not bytes(): the same checks, quicker (docs/benchmarks.md)."""
    try:
        return np.frombuffer(bytearray(values), dtype=np.uint8)
    except (TypeError, ValueError):
        return None


def json_pixels(values: list, where: str, *, exact: bool) -> np.ndarray:
    """Flat float32 pixels from a list of JSON values, each a finite number 0..255, or
    InvalidInput naming `where`. With `exact` (see no_booleans) a conversion in C checks the
    types: uint8_values for integers 0..255, else array("d") for any number; a scan of the types
    and numpy's conversion of Python numbers took 3 to 4 times as long."""
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
    if _in_range(pixels):
        return pixels
    if not np.all(np.isfinite(pixels)):
        raise InvalidInput(f"{where} holds a NaN or infinite value; every pixel is a number 0..255")
    raise InvalidInput(f"{where} holds values outside 0..255 (background 0, ink 255)")


def _in_range(pixels: np.ndarray) -> bool:
    # NaN fails both comparisons, and infinities the one on their side: no isfinite pass needed.
    return not pixels.size or bool(pixels.min() >= 0 and pixels.max() <= 255)


def _flatten(value, where: str) -> list:
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
