"""`POST /api/feedback` as bytes: what it carries, read into a `FeedbackItem` or refused with an
error that says what to fix. The pixels are read exactly as `/api/predict` reads them."""

from __future__ import annotations

import numpy as np

from functions.api.http_body import is_json, media_type, reject_compressed
from functions.api.pixels import image_pixels, no_booleans
from functions.api.request_errors import InputTooLarge, InvalidInput, UnsupportedContent
from functions.feedback.item import REQUEST_FIELDS, FeedbackItem, checked_item
from functions.json_codec import parse_json

# An item is under 4 KB as whole numbers; 64 KiB leaves room for floats with every decimal.
MAX_FEEDBACK_BYTES = 64 * 1024


def parse_feedback(
    content_type: str | None, body: bytes, content_encoding: str | None = None
) -> FeedbackItem:
    reject_compressed(content_encoding)
    media = media_type(content_type)
    if media and not is_json(media):
        raise UnsupportedContent("send the correction as application/json")
    if len(body) > MAX_FEEDBACK_BYTES:
        raise InputTooLarge(f"the body is over the limit of {MAX_FEEDBACK_BYTES} bytes")
    if not body.strip():
        raise InvalidInput("the body is empty; send the correction as a JSON object")
    document = parse_json(body)
    if not isinstance(document, dict) or set(document) != REQUEST_FIELDS:
        raise InvalidInput(
            'send a JSON object with exactly "pixels", "predicted", "label" and "model_version"'
        )
    pixels = image_pixels(document["pixels"], "pixels", no_booleans(body))
    # Stored as whole numbers, as MNIST's own pixels are (contracts.md section 2a).
    whole = np.rint(pixels.reshape(28, 28)).astype(np.uint8)
    return checked_item(whole, document)
