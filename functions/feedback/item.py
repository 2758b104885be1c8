"""One correction: the 28x28 image the model saw, the model's answer and the right answer, each a
digit or NOT_DIGIT ("this is not a digit"). Its id, its stored form and the checks on both live
here; the feedback endpoint and training use them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from functions.feedback.errors import InvalidItem
from functions.storage.names import VERSION_PATTERN

SCHEMA = 1
ITEMS = "items/"
ITEM_ID_PATTERN = "[0-9a-f]{64}"
SIDE = 28
DIGITS = range(10)
# An answer that is no digit at all: the model's ("that doesn't look like a digit") or the
# person's ("it is not a digit"). In an item's id it is the one ASCII character NOT_DIGIT_MARK.
NOT_DIGIT = "not_digit"
NOT_DIGIT_MARK = "n"
REQUEST_FIELDS = frozenset({"pixels", "predicted", "label", "model_version"})
STORED_FIELDS = REQUEST_FIELDS | {"schema", "received_at"}


@dataclass(frozen=True, eq=False)
class FeedbackItem:
    pixels: np.ndarray  # (28, 28) uint8, 0..255, MNIST polarity
    label: int | str  # the right answer: a digit 0..9, or NOT_DIGIT
    predicted: int | str  # the model's answer: a digit 0..9, or NOT_DIGIT
    model_version: str

    @property
    def id(self) -> str:
        return item_id(self.pixels, self.label)


def item_id(pixels: np.ndarray, label: int | str) -> str:
    """The content hash: the same drawing with the same correction is one item. The label is one
    ASCII character after the 784 pixel bytes: the digit, or "n" for NOT_DIGIT."""
    data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes() + _id_mark(label)
    return hashlib.sha256(data).hexdigest()


def _id_mark(label: object) -> bytes:
    if isinstance(label, str) and label == NOT_DIGIT:
        return NOT_DIGIT_MARK.encode("ascii")
    # A numpy integer too (training's arrays), never a bool.
    if isinstance(label, int | np.integer) and not isinstance(label, bool) and 0 <= label <= 9:
        return str(int(label)).encode("ascii")
    raise InvalidItem(f'a label is a digit, an integer 0..9, or "{NOT_DIGIT}", not {label!r}')


def blob_name(item_id: str) -> str:
    return f"{ITEMS}{item_id}.json"


def stored_document(item: FeedbackItem, received_at: str) -> dict[str, object]:
    """The item as it is written to storage: whole pixel values, rows of 28, readable as a
    picture by anyone who opens the blob."""
    return {
        "schema": SCHEMA,
        "pixels": item.pixels.tolist(),
        "label": item.label,
        "predicted": item.predicted,
        "model_version": item.model_version,
        "received_at": received_at,
    }


def item_from_stored(document: object) -> FeedbackItem:
    """A stored item (or a line of an export) checked as strictly as it was written; InvalidItem
    naming what is wrong otherwise."""
    if not isinstance(document, dict) or set(document) != STORED_FIELDS:
        raise InvalidItem(f"a stored item has exactly the fields {sorted(STORED_FIELDS)}")
    if type(document["schema"]) is not int or document["schema"] != SCHEMA:
        raise InvalidItem(f"schema {document['schema']!r} is not {SCHEMA}")
    if not isinstance(document["received_at"], str):
        raise InvalidItem('"received_at" must be a string')
    rows = document["pixels"]
    if (
        not isinstance(rows, list)
        or len(rows) != SIDE
        or not all(isinstance(row, list) and len(row) == SIDE for row in rows)
        or not all(type(value) is int and 0 <= value <= 255 for row in rows for value in row)
    ):
        raise InvalidItem('"pixels" must be 28 rows of 28 whole numbers 0..255')
    return checked_item(np.array(rows, dtype=np.uint8), document)


def checked_item(pixels: np.ndarray, fields: dict) -> FeedbackItem:
    """The item from (28, 28) uint8 `pixels` and the other fields of `fields`, each checked."""
    predicted = _answer(fields["predicted"], "predicted")
    label = _answer(fields["label"], "label")
    if label == predicted:
        raise InvalidItem('"label" equals "predicted": send corrections of wrong answers only')
    version = fields["model_version"]
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise InvalidItem(
            '"model_version" must be a model version: 1-64 letters, digits, ".", "_" or "-"'
        )
    if not pixels.any():
        raise InvalidItem('"pixels" shows no ink; send the image the model answered')
    return FeedbackItem(pixels=pixels, label=label, predicted=predicted, model_version=version)


def _answer(value: object, name: str) -> int | str:
    """A digit 0..9 or NOT_DIGIT, exactly: no bool (an int), no "3", no 3.0, no "Not_Digit"."""
    if type(value) is str and value == NOT_DIGIT:
        return NOT_DIGIT
    if type(value) is not int or value not in DIGITS:  # bool is an int: compare the exact type
        raise InvalidItem(f'"{name}" must be a digit, an integer 0..9, or "{NOT_DIGIT}"')
    return value
