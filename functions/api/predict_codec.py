"""`POST /api/predict` as bytes: what a request carries (JSON pixels in three forms, a batch of
them, or a PNG/JPEG body) read into a float32 batch of shape (n, 28, 28, 1), or an error that
says what to fix; and the predictions written back as its JSON answer."""

from __future__ import annotations

from itertools import chain
from typing import NamedTuple

import numpy as np

from functions.api.http_body import IMAGE_TYPES, is_json, media_type, reject_compressed
from functions.api.pixels import PIXELS, SHAPE_HINT, image_pixels, json_pixels, no_booleans
from functions.api.request_errors import InputTooLarge, InvalidInput, UnsupportedContent
from functions.json_codec import parse_json
from functions.model_contract import INPUT_SHAPE, MAX_BATCH
from functions.serving.inference import Predictions

MAX_JSON_BYTES = 4 * 1024 * 1024  # a full batch of 256 images as JSON is about 1.5 MB
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # a phone photo
FIELDS = frozenset({"pixels", "images"})
DECIMALS = 6  # of each probability in the answer


class PredictRequest(NamedTuple):
    images: np.ndarray  # (n, 28, 28, 1) float32, 0..255, MNIST polarity
    batch: bool  # answer with a list, even of one


def parse_predict_request(
    content_type: str | None, body: bytes, content_encoding: str | None = None
) -> PredictRequest:
    """Raises a `functions/api/request_errors.py` error that says what to fix, or DecodersBusy
    when every picture decoder stayed taken (no fault of the request)."""
    reject_compressed(content_encoding)
    media = media_type(content_type)
    if media in IMAGE_TYPES:
        return _from_image(body)
    if is_json(media) or not media:
        return _from_json(body)
    raise UnsupportedContent(
        "this content type is not supported; send application/json, image/png or image/jpeg"
    )


def predict_answer(predictions: Predictions, batch: bool) -> dict[str, object]:
    """The JSON answer: per image its digit (`prediction`, the closest digit), that digit's
    probability (`confidence`), the ten probabilities, rounded to 6 decimals (half to even), and
    whether it is a digit at all (`is_digit`); one image as the answer itself, a batch as
    `predictions`."""
    rounded = np.round(predictions.probabilities.astype(np.float64), DECIMALS)
    answers = [
        {
            "prediction": digit,
            "confidence": float(row[digit]),
            "probabilities": row,
            "is_digit": is_digit,
        }
        for digit, row, is_digit in zip(
            predictions.digits.tolist(), rounded, predictions.is_digit.tolist(), strict=True
        )
    ]
    if batch:
        return {"predictions": answers, "model_version": predictions.version}
    return {**answers[0], "model_version": predictions.version}


def _from_image(body: bytes) -> PredictRequest:
    if len(body) > MAX_IMAGE_BYTES:
        raise InputTooLarge(f"the picture is over the limit of {MAX_IMAGE_BYTES} bytes")
    if not body:
        raise InvalidInput("the body is empty; send the bytes of a PNG or JPEG picture")
    # Pictures only: Pillow, which a JSON request never needs.
    from functions.preprocessing.pictures import (  # noqa: PLC0415
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
    return PredictRequest(images=image.reshape(1, *INPUT_SHAPE).astype(np.float32), batch=False)


def _from_json(body: bytes) -> PredictRequest:
    if len(body) > MAX_JSON_BYTES:
        raise InputTooLarge(f"the JSON body is over the limit of {MAX_JSON_BYTES} bytes")
    if not body or body.isspace():  # not strip(): it would copy a batch's 1.5 MB to ask
        raise InvalidInput('the body is empty; send JSON such as {"pixels": [784 numbers]}')
    document = parse_json(body)
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
        return PredictRequest(images=_batch(document["images"], exact), batch=True)
    raise InvalidInput('the JSON object needs a "pixels" field (one image) or "images" (a batch)')


def _one_image(value, where: str, exact: bool) -> PredictRequest:
    pixels = image_pixels(value, where, exact)
    return PredictRequest(images=pixels.reshape(1, *INPUT_SHAPE), batch=False)


def _batch(images, exact: bool) -> np.ndarray:
    if not isinstance(images, list):
        raise InvalidInput(f'"images" must be an array of images, each {SHAPE_HINT}')
    if not images:
        raise InvalidInput(f'"images" is empty; send 1 to {MAX_BATCH} images')
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
