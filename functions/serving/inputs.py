"""What a prediction request carries: JSON pixels (three forms, or a batch) or a PNG/JPEG body,
turned into a float32 batch of shape (n, 28, 28, 1), or an error that says what to fix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import chain

import numpy as np

from functions.errors import CompressedBody, InputTooLarge, InvalidInput, UnsupportedContent
from functions.preprocessing import PictureTooLarge, UndecodableImage, preprocess_image_bytes

MAX_BATCH = 256
MAX_JSON_BYTES = 4 * 1024 * 1024  # a full batch of 256 images as JSON is about 1.5 MB
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # a phone photo
PIXELS = 28 * 28
JSON_TYPES = ("application/json",)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg")
SHAPE_HINT = "784 numbers or 28 arrays of 28 numbers"
NUMBER_TYPES = {int, float}
IDENTITY_ENCODINGS = ("", "identity")


@dataclass(frozen=True)
class PredictionInput:
    images: np.ndarray  # (n, 28, 28, 1) float32, 0..255, MNIST polarity
    batch: bool  # answer with a list, even of one


def parse_prediction_input(
    content_type: str | None, body: bytes, content_encoding: str | None = None
) -> PredictionInput:
    """Raises a `functions.errors` error that says what to fix, or preprocessing.DecodersBusy
    when every picture decoder stayed taken (no fault of the request)."""
    if (content_encoding or "").strip().lower() not in IDENTITY_ENCODINGS:
        # Inflating is where a small body becomes a large one: it is never done here.
        raise CompressedBody(
            "compressed bodies are not accepted; send the body uncompressed, without "
            "Content-Encoding"
        )
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type in IMAGE_TYPES:
        return _from_image(body)
    if media_type in JSON_TYPES or media_type.endswith("+json") or not media_type:
        return _from_json(body)
    raise UnsupportedContent(
        "this content type is not supported; send application/json, image/png or image/jpeg"
    )


def _from_image(body: bytes) -> PredictionInput:
    if len(body) > MAX_IMAGE_BYTES:
        raise InputTooLarge(f"the picture is over the limit of {MAX_IMAGE_BYTES} bytes")
    if not body:
        raise InvalidInput("the body is empty; send the bytes of a PNG or JPEG picture")
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
    if isinstance(document, list):  # the earlier system's clients send a bare array
        return PredictionInput(images=_stack([_image(document, "the body")]), batch=False)
    if not isinstance(document, dict):
        raise InvalidInput(
            'expected a JSON object with "pixels" or "images", or an array of pixels'
        )
    unknown = sorted(set(document) - {"pixels", "images"})
    if unknown:
        raise InvalidInput('the object has an unknown field; send only "pixels" or "images"')
    if "pixels" in document and "images" in document:
        raise InvalidInput('send either "pixels" (one image) or "images" (a batch), not both')
    if "pixels" in document:
        return PredictionInput(images=_stack([_image(document["pixels"], "pixels")]), batch=False)
    if "images" in document:
        return PredictionInput(images=_stack(_batch(document["images"])), batch=True)
    raise InvalidInput('the JSON object needs a "pixels" field (one image) or "images" (a batch)')


def _parse_json(body: bytes):
    if not body.strip():
        raise InvalidInput('the body is empty; send JSON such as {"pixels": [784 numbers]}')
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        raise InvalidInput("the body is not UTF-8 text") from error
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"the body is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from error
    except RecursionError as error:
        raise InvalidInput("the JSON is nested too deeply; images are at most 3 levels") from error
    except ValueError as error:  # Python refuses integers of more than 4300 digits
        raise InvalidInput("the body holds a number too long to be a pixel value") from error


def _refuse_constant(name: str):
    raise InvalidInput(f"{name} is not a pixel value; every pixel must be a number 0..255")


def _batch(images) -> list[np.ndarray]:
    if not isinstance(images, list):
        raise InvalidInput(f'"images" must be an array of images, each {SHAPE_HINT}')
    if not images:
        raise InvalidInput('"images" is empty; send 1 to 256 images')
    if len(images) > MAX_BATCH:
        raise InvalidInput(f'"images" holds {len(images)} images; at most {MAX_BATCH} per request')
    return [_image(image, f"images[{index}]") for index, image in enumerate(images)]


def _image(value, where: str) -> np.ndarray:
    numbers = _flatten(value, where)
    try:
        pixels = np.array(numbers, dtype=np.float64)
    except OverflowError as error:  # an integer beyond float64, such as 10**400
        raise InvalidInput(f"{where} holds a value far outside 0..255") from error
    if not np.all(np.isfinite(pixels)):  # 1e999 parses as infinity
        raise InvalidInput(f"{where} holds an infinite value; every pixel is a number 0..255")
    if pixels.min() < 0 or pixels.max() > 255:
        raise InvalidInput(f"{where} holds values outside 0..255 (background 0, ink 255)")
    return pixels.reshape(28, 28)


def _flatten(value, where: str) -> list:
    """784 numbers, from either form. Checks types with set(map(type, ...)), which runs in C:
    a per-item Python loop cost more than the model's inference."""
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be an array of {SHAPE_HINT}")
    kinds = set(map(type, value))
    if len(value) == 28 and kinds == {list}:
        if any(len(row) != 28 for row in value):
            lengths = sorted({len(row) for row in value})
            raise InvalidInput(f"{where} has rows of length {lengths}; expected 28 rows of 28")
        value = list(chain.from_iterable(value))
        kinds = set(map(type, value))
    elif len(value) != PIXELS:
        raise InvalidInput(f"{where} has {len(value)} items; expected {SHAPE_HINT}")
    # bool is a subclass of int, but true/false are no pixel values: compare exact types.
    if not kinds <= NUMBER_TYPES:
        raise InvalidInput(f"{where} holds a value that is not a number; every pixel is 0..255")
    return value


def _stack(images: list[np.ndarray]) -> np.ndarray:
    return np.stack(images).astype(np.float32).reshape(-1, 28, 28, 1)
