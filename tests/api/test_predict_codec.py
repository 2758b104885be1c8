"""The codec of `POST /api/predict` (functions/api/predict_codec.py), without the Functions host:
bytes and headers in, a float32 batch out; predictions in, the JSON answer out."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from functions.api.predict_codec import (
    MAX_IMAGE_BYTES,
    MAX_JSON_BYTES,
    parse_predict_request,
    predict_answer,
)
from functions.api.request_errors import (
    CompressedBody,
    InputTooLarge,
    InvalidInput,
    UnsupportedContent,
)
from functions.json_codec import to_json
from functions.model_contract import MAX_BATCH
from functions.serving.inference import Predictions

JSON = "application/json"
ROWS = np.arange(784, dtype=np.float32).reshape(28, 28) % 256


def parsed(document: object, content_type: str | None = JSON):
    return parse_predict_request(content_type, json.dumps(document).encode())


@pytest.mark.parametrize(
    "document",
    [{"pixels": ROWS.ravel().tolist()}, {"pixels": ROWS.tolist()}, ROWS.ravel().tolist()],
    ids=["flat", "rows", "bare array"],
)
def test_one_image_in_each_form_is_one_float32_image(document) -> None:
    request = parsed(document)
    assert request.batch is False
    assert request.images.dtype == np.float32
    assert request.images.shape == (1, 28, 28, 1)
    np.testing.assert_array_equal(request.images.reshape(28, 28), ROWS)


def test_a_batch_in_mixed_forms_keeps_its_order() -> None:
    images = [ROWS.ravel().tolist(), (255 - ROWS).tolist(), [0.5] * 784]
    request = parsed({"images": images})
    assert request.batch is True
    assert request.images.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(request.images[1].reshape(28, 28), 255 - ROWS)
    assert (request.images[2] == 0.5).all()


def test_a_batch_of_one_is_still_a_batch() -> None:
    assert parsed({"images": [ROWS.tolist()]}).batch is True


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"images": [[0] * 784, [0] * 783 + [256]]}, "images[1]"),
        ({"images": [[0] * 784, [0] * 783 + [True]]}, "images[1]"),
        ({"pixels": [0] * 783 + [-1.5]}, "pixels"),
        ([0] * 783 + ["7"], "the body"),
    ],
)
def test_a_wrong_value_is_named_where_it_is(document, where: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(where)} "):
        parsed(document)


def test_nan_and_infinity_are_refused_in_words() -> None:
    with pytest.raises(InvalidInput, match="NaN is not a pixel value"):
        parse_predict_request(JSON, b'{"pixels": [NaN]}')
    with pytest.raises(InvalidInput, match=r"far outside 0\.\.255"):
        parse_predict_request(JSON, b'{"pixels": [1e999]}')


def test_the_batch_limit_is_the_model_contracts() -> None:
    assert parsed({"images": [[0] * 784] * MAX_BATCH}).images.shape[0] == MAX_BATCH
    with pytest.raises(InvalidInput, match=f"at most {MAX_BATCH}"):
        parsed({"images": [[0] * 784] * (MAX_BATCH + 1)})


def test_body_limits_media_types_and_encodings() -> None:
    with pytest.raises(InputTooLarge):
        parse_predict_request(JSON, b" " * (MAX_JSON_BYTES + 1))
    with pytest.raises(InputTooLarge):
        parse_predict_request("image/png", b"\0" * (MAX_IMAGE_BYTES + 1))
    with pytest.raises(UnsupportedContent):
        parse_predict_request("text/plain", b"[]")
    with pytest.raises(CompressedBody):
        parse_predict_request(JSON, b"[]", "gzip")
    # Parameters and case do not matter; neither does a missing Content-Type (JSON).
    assert parse_predict_request(" Application/JSON; charset=utf-8", b"[0" + b",0" * 783 + b"]")
    assert parsed([0] * 784, content_type=None).images.shape == (1, 28, 28, 1)


def predictions(probabilities: np.ndarray, is_digit: list[bool] | None = None) -> Predictions:
    flags = np.ones(len(probabilities), dtype=bool) if is_digit is None else np.array(is_digit)
    return Predictions("v1", probabilities.argmax(axis=1), probabilities, flags)


def test_the_answer_of_one_image_and_of_a_batch() -> None:
    rows = np.full((2, 10), 0.05, dtype=np.float32)
    rows[0, 7] = rows[1, 2] = 0.55
    one = predict_answer(predictions(rows[:1]), batch=False)
    assert list(one) == ["prediction", "confidence", "probabilities", "is_digit", "model_version"]
    assert (one["prediction"], one["confidence"], one["model_version"]) == (7, 0.55, "v1")
    assert one["is_digit"] is True
    both = json.loads(to_json(predict_answer(predictions(rows, [True, False]), batch=True)))
    assert both["model_version"] == "v1"
    assert [answer["prediction"] for answer in both["predictions"]] == [7, 2]
    # Not a digit: the closest digit and its probabilities are still there.
    assert both["predictions"][1]["is_digit"] is False
    assert both["predictions"][1]["confidence"] == 0.55
    alone = json.loads(to_json(one))
    del alone["model_version"]
    assert both["predictions"][0] == alone


def test_probabilities_are_rounded_to_six_decimals_half_to_even() -> None:
    """Every value as Python's round(x * 1e6) / 1e6 gives it, halfway values included (odd
    multiples of 1/128, the float32 values that lie exactly halfway between two sixth decimals:
    rounded half to even), and an image alone answered as in a batch."""
    rng = np.random.default_rng(0)
    halfway = np.arange(1, 128, 2) / 128
    values = np.concatenate([rng.random(20_000), rng.random(20_000) * 1e-5, halfway])
    rows = values[: len(values) // 10 * 10].astype(np.float32).reshape(-1, 10)
    batch = json.loads(to_json(predict_answer(predictions(rows), batch=True)))["predictions"]
    for row, in_batch in zip(rows, batch, strict=True):
        expected = [round(value * 1e6) / 1e6 for value in row.tolist()]
        assert in_batch["probabilities"] == expected
        alone = json.loads(to_json(predict_answer(predictions(row[np.newaxis]), batch=False)))
        del alone["model_version"]
        assert alone == in_batch
