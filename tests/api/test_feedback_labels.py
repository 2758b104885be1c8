"""Corrections that say "this is not a digit" (issue #25): `"not_digit"` as the right answer and
as the model's answer, through the real feedback handler (`functions.api.handlers.feedback`, with
real `func.HttpRequest` objects) and a real Azurite container, with the same checks and id rule
as a digit's (contracts.md sections 2a and 4); and the item's own rules
(functions/feedback/item.py) for both forms."""

from __future__ import annotations

import hashlib
import json
import re

import azure.functions as func
import numpy as np
import pytest
from azure.storage.blob import ContainerClient

from functions.api import handlers
from functions.api.rate_limit import ClientRateLimit
from functions.composition import Services
from functions.feedback.errors import InvalidItem
from functions.feedback.item import (
    NOT_DIGIT,
    STORED_FIELDS,
    FeedbackItem,
    blob_name,
    checked_item,
    item_from_stored,
    item_id,
    stored_document,
)
from functions.feedback.store import FeedbackStore
from tests.helpers import call, http_request, problem_of

VERSION = "mnist-cnn-1.2.0"


@pytest.fixture
def digit(mnist) -> np.ndarray:
    """A test 7, as a person might draw it."""
    return mnist["x_test"][int(np.flatnonzero(mnist["y_test"] == 7)[0])]


def feedback_services(container: ContainerClient) -> Services:
    return Services(feedback_store=FeedbackStore(container), feedback_limit=ClientRateLimit(1000))


def correction(pixels: np.ndarray, label, predicted) -> dict:
    return {
        "pixels": pixels.tolist(),
        "predicted": predicted,
        "label": label,
        "model_version": VERSION,
    }


def send(services: Services, body: dict) -> func.HttpResponse:
    """POSTed as the platform's front end hands it on, the client's address last in
    X-Forwarded-For."""
    request = http_request("POST", "feedback", body)
    request = func.HttpRequest(
        "POST",
        request.url,
        headers={**request.headers, "X-Forwarded-For": "192.0.2.1"},
        body=request.get_body(),
    )
    return call(lambda req: handlers.feedback(req, services), request)


def stored(container: ContainerClient) -> dict[str, dict]:
    return {
        blob.name: json.loads(container.download_blob(blob.name).readall())
        for blob in container.list_blobs()
    }


def contract_id(pixels: np.ndarray, mark: str) -> str:
    """docs/contracts.md section 2a in its own words, apart from the code: sha256 of the 784
    pixel bytes, row-major, then the label as one ASCII character ("n" for not_digit)."""
    return hashlib.sha256(np.asarray(pixels, np.uint8).tobytes() + mark.encode("ascii")).hexdigest()


def a_smiley() -> np.ndarray:
    """Something that is no digit: two eyes and a mouth, whole numbers 0..255."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[8:11, 8:11] = image[8:11, 17:20] = 255
    image[18, 8:20] = 200
    image[17, [7, 20]] = 180
    return image


# --- through the handler, stored in Azurite ---------------------------------------------------


@pytest.mark.parametrize(
    ("predicted", "label", "mark"),
    [(5, NOT_DIGIT, "n"), (NOT_DIGIT, 4, "4")],
    ids=["person-says-not-a-digit", "person-says-it-is-a-4"],
)
def test_not_digit_is_stored_as_label_and_as_predicted(
    feedback_container,
    predicted,
    label,
    mark,
):
    pixels = a_smiley()
    services = feedback_services(feedback_container)
    answer = send(services, correction(pixels, label, predicted))
    assert answer.status_code == 202, answer.get_body()
    identifier = json.loads(answer.get_body())["item"]
    assert identifier == contract_id(pixels, mark)
    assert identifier == item_id(pixels, label)

    items = stored(feedback_container)
    assert list(items) == [blob_name(identifier)]
    document = items[blob_name(identifier)]
    assert set(document) == STORED_FIELDS
    assert (document["predicted"], document["label"]) == (predicted, label)
    assert document["pixels"] == pixels.tolist()
    assert document["model_version"] == VERSION
    item = item_from_stored(document)  # what training reads back
    assert (item.predicted, item.label, item.id) == (predicted, label, identifier)


def test_a_digit_and_not_digit_for_the_same_drawing_are_two_items(
    feedback_container,
    digit,
):
    pixels = digit
    services = feedback_services(feedback_container)
    first = send(services, correction(pixels, NOT_DIGIT, 7))
    again = send(services, correction(pixels, NOT_DIGIT, 7))
    other = send(services, correction(pixels, 7, NOT_DIGIT))
    assert [r.status_code for r in (first, again, other)] == [202, 202, 202]
    assert first.get_body() == again.get_body()  # its id is its content: stored once
    ids = {json.loads(r.get_body())["item"] for r in (first, other)}
    assert ids == {contract_id(pixels, "n"), contract_id(pixels, "7")}
    assert set(stored(feedback_container)) == {blob_name(i) for i in ids}


@pytest.mark.parametrize(
    ("predicted", "label"),
    [
        (3, 3),  # a digit the model got right
        (NOT_DIGIT, NOT_DIGIT),  # not a digit, and the model said so
    ],
    ids=["digit-equals-digit", "not_digit-equals-not_digit"],
)
def test_a_right_answer_is_refused(feedback_container, predicted, label):
    services = feedback_services(feedback_container)
    answer = send(services, correction(a_smiley(), label, predicted))
    assert answer.status_code == 400
    assert "wrong answers only" in problem_of(answer)["detail"]
    assert stored(feedback_container) == {}


@pytest.mark.parametrize(
    "value",
    ["not a digit", "Not_Digit", "NOT_DIGIT", "not_digit ", "n", "3", "", True, 3.0, 10, -1, None],
)
@pytest.mark.parametrize("field", ["label", "predicted"])
def test_any_other_answer_is_refused(feedback_container, field, value):
    services = feedback_services(feedback_container)
    other = "predicted" if field == "label" else "label"
    body = {**correction(a_smiley(), 0, 5), other: 5, field: value}
    answer = send(services, body)
    assert answer.status_code == 400, answer.get_body()
    detail = problem_of(answer)["detail"]
    assert f'"{field}"' in detail
    assert '"not_digit"' in detail  # says what it may be
    assert stored(feedback_container) == {}


def test_not_digit_corrections_count_against_the_same_rate_limit(feedback_container, digit):
    now = [1000.0]
    limit = ClientRateLimit(2, clock=lambda: now[0])
    services = Services(feedback_store=FeedbackStore(feedback_container), feedback_limit=limit)
    answers = [
        send(services, correction(digit, NOT_DIGIT, 7)),
        send(services, correction(a_smiley(), 4, NOT_DIGIT)),
        send(services, correction(a_smiley(), 5, NOT_DIGIT)),
    ]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert int(answers[2].headers["Retry-After"]) > 0
    assert len(stored(feedback_container)) == 2


# --- the item -----------------------------------------------------------------------------------


def stored_form(label, predicted, changes=None) -> dict:
    item = FeedbackItem(pixels=a_smiley(), label=label, predicted=predicted, model_version=VERSION)
    return {**stored_document(item, "2026-12-04T15:00:00Z"), **(changes or {})}


def test_the_id_of_a_digit_is_unchanged_and_not_digit_ends_in_n():
    pixels = a_smiley()
    for label in range(10):
        assert item_id(pixels, label) == contract_id(pixels, str(label))
    assert item_id(pixels, np.int64(4)) == contract_id(pixels, "4")  # training's arrays
    assert item_id(pixels, NOT_DIGIT) == contract_id(pixels, "n")
    for wrong in ("n", "4", "not a digit", True, 10, -1, 4.0, None):
        with pytest.raises(InvalidItem):
            item_id(pixels, wrong)


@pytest.mark.parametrize(("label", "predicted"), [(NOT_DIGIT, 5), (0, NOT_DIGIT), (2, 9)])
def test_a_stored_item_is_read_back_in_both_forms(label, predicted):
    document = json.loads(json.dumps(stored_form(label, predicted)))  # as it lies in the blob
    item = item_from_stored(document)
    assert (item.label, item.predicted) == (label, predicted)
    assert item.id == item_id(a_smiley(), label)
    assert stored_document(item, document["received_at"]) == document


@pytest.mark.parametrize(
    "changes",
    [
        {"label": NOT_DIGIT, "predicted": NOT_DIGIT},
        {"label": "not-digit"},
        {"label": "Not_Digit"},
        {"predicted": "nan"},
        {"predicted": "5"},
        {"label": 1.0},
        {"label": False},
        {"label": None},
        {"predicted": [NOT_DIGIT]},
    ],
)
def test_item_from_stored_stays_strict(changes):
    with pytest.raises(InvalidItem):
        item_from_stored(stored_form(NOT_DIGIT, 5, changes))


def test_checked_item_names_what_is_wrong():
    fields = {"label": NOT_DIGIT, "predicted": NOT_DIGIT, "model_version": VERSION}
    with pytest.raises(InvalidItem, match="wrong answers only"):
        checked_item(a_smiley(), fields)
    expected = '"label" must be a digit, an integer 0..9, or "not_digit"'
    with pytest.raises(InvalidItem, match=re.escape(expected)):
        checked_item(a_smiley(), {**fields, "label": "none"})
    item = checked_item(a_smiley(), {**fields, "predicted": 8})
    assert (item.label, item.predicted) == (NOT_DIGIT, 8)
