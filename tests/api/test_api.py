"""The HTTP functions, called with real `func.HttpRequest` objects: wiring, every input form,
and every class of bad input with its status and problem+json body."""

from __future__ import annotations

import gzip
import importlib
import io
import json

import azure.functions as func
import numpy as np
import pytest
from PIL import Image

import function_app
from functions.api import handlers
from functions.api.predict_codec import MAX_IMAGE_BYTES, MAX_JSON_BYTES
from functions.api.problems import DECODERS_BUSY_RETRY_AFTER
from functions.composition import Services
from functions.model_contract import MAX_BATCH
from functions.preprocessing import pictures as preprocessing
from tests import bad_models
from tests.helpers import call, http_request, picture_of_digit, problem_of

# The handlers around the app's own parts, as function_app.py builds them (storage from the
# environment; without it, the bundled model only).
services = Services()
ALL_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
V2_FUNCTIONS = {
    "v2_server_metadata",
    "v2_live",
    "v2_ready",
    "v2_model_metadata",
    "v2_model_ready",
    "v2_infer",
    "v2_version_metadata",
    "v2_version_ready",
    "v2_version_infer",
}


@pytest.fixture(scope="module")
def digits(mnist):
    """Twenty test digits, the first two of each class."""
    labels = mnist["y_test"]
    chosen = np.concatenate([np.flatnonzero(labels == digit)[:2] for digit in range(10)])
    return mnist["x_test"][chosen], labels[chosen]


@pytest.fixture(scope="module")
def declared():
    """The functions as the host indexes them. `get_functions()` may be called once per app (a
    second call reports every name as a duplicate), so each module indexes a freshly built one."""
    return importlib.reload(function_app).app.get_functions()


def body_of(response: func.HttpResponse) -> dict:
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())


def assert_prediction(response: func.HttpResponse, label: int) -> dict:
    assert response.status_code == 200, response.get_body()
    answer = body_of(response)
    assert answer["prediction"] == label
    assert len(answer["probabilities"]) == 10
    assert sum(answer["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert answer["confidence"] == max(answer["probabilities"])
    assert answer["model_version"] == response.headers["X-Model-Version"]
    return answer


def predict_json(document: object) -> func.HttpResponse:
    return call(handlers.predict, http_request("POST", "predict", document), services)


# --- wiring ---------------------------------------------------------------------------------


def test_app_declares_exactly_the_http_functions(declared):
    routes = {}
    for function in declared:
        trigger = function.get_trigger()
        if trigger.type != "httpTrigger":
            continue
        routes[function.get_function_name()] = (
            trigger.route,
            {str(method) for method in trigger.methods},
            str(trigger.auth_level),
        )
    anonymous = str(func.AuthLevel.ANONYMOUS)
    assert routes == {
        "predict": ("predict", ALL_METHODS, anonymous),
        "feedback": ("feedback", ALL_METHODS, anonymous),
        "health": ("health", ALL_METHODS, anonymous),
        "models": ("models", ALL_METHODS, anonymous),
        "openapi": ("openapi.json", ALL_METHODS, anonymous),
        "v2_server_metadata": ("v2", ALL_METHODS, anonymous),
        "v2_live": ("v2/health/live", ALL_METHODS, anonymous),
        "v2_ready": ("v2/health/ready", ALL_METHODS, anonymous),
        "v2_model_metadata": ("v2/models/{name}", ALL_METHODS, anonymous),
        "v2_model_ready": ("v2/models/{name}/ready", ALL_METHODS, anonymous),
        "v2_infer": ("v2/models/{name}/infer", ALL_METHODS, anonymous),
        "v2_version_metadata": ("v2/models/{name}/versions/{version}", ALL_METHODS, anonymous),
        "v2_version_ready": ("v2/models/{name}/versions/{version}/ready", ALL_METHODS, anonymous),
        "v2_version_infer": ("v2/models/{name}/versions/{version}/infer", ALL_METHODS, anonymous),
    }


def test_app_declares_the_promotion_triggers(declared):
    triggers = {function.get_function_name(): function.get_trigger() for function in declared}
    assert set(triggers) == {
        "predict",
        "feedback",
        "health",
        "models",
        "openapi",
        *V2_FUNCTIONS,
        "promote_model",
        "reconcile_incoming",
    }
    raw = {f.get_function_name(): [json.loads(b) for b in f.get_raw_bindings()] for f in declared}
    # The drop zone's BlobCreated events (infra/modules/event-subscription.bicep), by name only:
    # the promoter reads the blob itself, so the host never downloads a dropped file.
    assert raw["promote_model"] == [
        {"direction": "IN", "type": "eventGridTrigger", "name": "event"}
    ]
    assert raw["reconcile_incoming"] == [
        {
            "direction": "IN",
            "type": "timerTrigger",
            "name": "timer",
            "schedule": "0 */5 * * * *",
            "runOnStartup": False,
        }
    ]


def test_every_http_function_has_an_http_output_binding(declared):
    for function in declared:
        kinds = {binding.type for binding in function.get_bindings()}
        if "httpTrigger" in kinds:
            assert kinds == {"httpTrigger", "http"}, function.get_function_name()
        else:
            assert len(kinds) == 1, function.get_function_name()  # the trigger alone


# --- good inputs ----------------------------------------------------------------------------


def test_flat_pixels(digits):
    images, labels = digits
    for image, label in zip(images, labels, strict=True):
        request = http_request("POST", "predict", {"pixels": image.ravel().tolist()})
        assert_prediction(call(handlers.predict, request, services), int(label))


def test_rows_of_pixels(digits):
    images, labels = digits
    request = http_request("POST", "predict", {"pixels": images[3].tolist()})
    assert_prediction(call(handlers.predict, request, services), int(labels[3]))


def test_bare_array_from_the_earlier_clients(digits):
    images, labels = digits
    request = http_request("POST", "predict", images[7].ravel().tolist())
    assert_prediction(call(handlers.predict, request, services), int(labels[7]))


def test_no_content_type_is_read_as_json(digits):
    images, labels = digits
    request = http_request("POST", "predict", images[5].ravel().tolist(), content_type=None)
    assert_prediction(call(handlers.predict, request, services), int(labels[5]))


def test_float_pixels_and_charset_parameter(digits):
    images, labels = digits
    pixels = (images[9].astype(float) * 0.999).ravel().tolist()
    request = http_request(
        "POST", "predict", {"pixels": pixels}, content_type="application/json; charset=utf-8"
    )
    assert_prediction(call(handlers.predict, request, services), int(labels[9]))


def test_batch_answers_every_image_in_order(digits):
    images, labels = digits
    request = http_request("POST", "predict", {"images": [image.tolist() for image in images]})
    response = call(handlers.predict, request, services)
    assert response.status_code == 200
    answer = body_of(response)
    assert [item["prediction"] for item in answer["predictions"]] == labels.tolist()
    assert answer["model_version"] == response.headers["X-Model-Version"]


def test_every_answer_says_whether_it_is_a_digit_at_all(digits):
    """Digits are; noise is not (the bundled model 1.2.0 read it as a digit, 100% sure): the
    closest digit and its probabilities still come back, with is_digit false, alone and in a
    batch."""
    images, labels = digits
    noise = np.random.default_rng(0).integers(0, 256, (28, 28)).tolist()
    digit = assert_prediction(predict_json({"pixels": images[0].tolist()}), labels[0])
    assert digit["is_digit"] is True
    flagged = body_of(predict_json({"pixels": noise}))
    assert flagged["is_digit"] is False
    assert flagged["confidence"] == max(flagged["probabilities"])
    batch = body_of(predict_json({"images": [images[1].tolist(), noise]}))["predictions"]
    assert [answer["is_digit"] for answer in batch] == [True, False]
    # Nothing drawn is no digit either, whatever the model reads in it.
    assert body_of(predict_json({"pixels": [0] * 784}))["is_digit"] is False


def test_batch_of_rows_and_of_mixed_forms(digits):
    images, labels = digits
    for batch in (
        [image.tolist() for image in images],
        [
            image.tolist() if index % 2 else image.ravel().tolist()
            for index, image in enumerate(images)
        ],
    ):
        response = call(
            handlers.predict, http_request("POST", "predict", {"images": batch}), services
        )
        assert response.status_code == 200
        assert [item["prediction"] for item in body_of(response)["predictions"]] == labels.tolist()


def test_largest_batch_is_accepted(digits):
    images, _ = digits
    batch = [images[index % len(images)].ravel().tolist() for index in range(MAX_BATCH)]
    response = call(handlers.predict, http_request("POST", "predict", {"images": batch}), services)
    assert response.status_code == 200
    assert len(body_of(response)["predictions"]) == MAX_BATCH


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
@pytest.mark.parametrize("inverted", [False, True], ids=["dark-on-light", "light-on-dark"])
def test_pictures_are_preprocessed_and_classified(digits, image_format, inverted):
    images, labels = digits
    content_type = f"image/{image_format.lower()}"
    for image, label in zip(images[::3], labels[::3], strict=True):
        picture = picture_of_digit(image, inverted=inverted, image_format=image_format)
        request = http_request("POST", "predict", picture, content_type=content_type)
        assert_prediction(call(handlers.predict, request, services), int(label))


# --- bad inputs -----------------------------------------------------------------------------

ONE = [0] * 784
BAD_JSON_BODIES = {
    "invalid JSON": (b'{"pixels": [1, 2', "not valid JSON"),
    "empty body": (b"", "body is empty"),
    "not UTF-8": (b'{"pixels": "\xff\xfe"}', "not UTF-8"),
    "a number": (b"7", "expected a JSON object"),
    "no known field": ({"pixel": ONE}, "unknown field"),
    "both fields": ({"pixels": ONE, "images": [ONE]}, "not both"),
    "too short": ({"pixels": [0] * 783}, "783 items"),
    "too long": ({"pixels": [0] * 785}, "785 items"),
    "ragged rows": ({"pixels": [[0] * 28] * 27 + [[0] * 27]}, "rows of length"),
    "pixels not an array": ({"pixels": "0" * 784}, "must be an array"),
    "a string pixel": ({"pixels": ["1"] * 784}, "not a number"),
    "a boolean pixel": ({"pixels": [True] * 784}, "not a number"),
    "a null pixel": ({"pixels": [None] * 784}, "not a number"),
    "a boolean among floats": ({"pixels": [0.5] * 783 + [False]}, "not a number"),
    "a string among integers": ({"pixels": [0] * 783 + ["1"]}, "not a number"),
    "a null among floats": ({"pixels": [None] + [0.5] * 783}, "not a number"),
    "a float over 255": ({"pixels": [0.5] * 783 + [255.5]}, "0..255"),
    "an integer over 255 among floats": ({"pixels": [0.5] * 783 + [256]}, "0..255"),
    "NaN": (b'{"pixels": [NaN' + b", 0" * 783 + b"]}", "NaN is not a pixel value"),
    "Infinity": (b'{"pixels": [Infinity' + b", 0" * 783 + b"]}", "Infinity is not"),
    "overflowing number": (b'{"pixels": [1e999' + b", 0" * 783 + b"]}", "infinite"),
    "negative value": ({"pixels": [-1] + [0] * 783}, "0..255"),
    "value over 255": ({"pixels": [256] + [0] * 783}, "0..255"),
    "empty batch": ({"images": []}, "is empty"),
    "too many images": ({"images": [ONE] * (MAX_BATCH + 1)}, f"at most {MAX_BATCH}"),
    "images not an array": ({"images": {"a": ONE}}, "array of images"),
    "bad image in batch": ({"images": [ONE, [1, 2, 3]]}, "images[1] has 3 items"),
    "a boolean in a batch": ({"images": [ONE, [0] * 783 + [True]]}, "images[1] holds a value"),
    "a value over 255 in a batch": ({"images": [ONE, ONE, [300] * 784]}, "images[2] holds values"),
    "deep nesting": (b"[" * 200_000, "nested too deeply"),
    "a 5000-digit integer": (b"[" + b"1" * 5000 + b"]", "too long"),
    "an integer beyond float64": (
        ("[" + ", ".join(["1" + "0" * 400] * 784) + "]").encode(),
        "far outside 0..255",
    ),
}


@pytest.mark.parametrize(("body", "says"), BAD_JSON_BODIES.values(), ids=BAD_JSON_BODIES.keys())
def test_bad_json_is_a_400_that_says_what_to_fix(body, says):
    response = call(handlers.predict, http_request("POST", "predict", body), services)
    assert response.status_code == 400
    problem = problem_of(response)
    assert says in problem["detail"]
    assert problem["title"] == "Bad Request"


def test_problem_does_not_echo_the_request():
    marker = 200000
    response = call(
        handlers.predict, http_request("POST", "predict", {"pixels": [marker] * 784}), services
    )
    assert response.status_code == 400
    assert b"200000" not in response.get_body()
    assert b"2e+05" not in response.get_body()
    assert "pixels" in problem_of(response)["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "image/png", "cannot be decoded"),
        (b"\xff\xd8\xff" + b"\x00" * 50, "image/jpeg", "cannot be decoded"),
        (b"", "image/png", "body is empty"),
    ],
    ids=["broken PNG", "broken JPEG", "empty picture"],
)
def test_undecodable_picture_is_a_400(body, content_type, says):
    response = call(
        handlers.predict, http_request("POST", "predict", body, content_type=content_type), services
    )
    assert response.status_code == 400
    assert says in problem_of(response)["detail"]


def test_blank_picture_is_a_400():
    blank = picture_of_digit(np.zeros((28, 28), dtype=np.uint8))
    response = call(
        handlers.predict, http_request("POST", "predict", blank, content_type="image/png"), services
    )
    assert response.status_code == 400
    assert "no ink" in problem_of(response)["detail"]


@pytest.mark.parametrize(
    ("size", "content_type"),
    [(MAX_JSON_BYTES + 1, "application/json"), (MAX_IMAGE_BYTES + 1, "image/png")],
)
def test_body_over_the_limit_is_a_413(size, content_type):
    request = http_request("POST", "predict", b" " * size, content_type=content_type)
    response = call(handlers.predict, request, services)
    assert response.status_code == 413
    assert "over the limit" in problem_of(response)["detail"]


def request_with_headers(body: bytes, **headers: str) -> func.HttpRequest:
    """A POST to predict with these headers (underscores in the names become dashes)."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return func.HttpRequest("POST", "http://localhost:7071/api/predict", headers=named, body=body)


def png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "identity, gzip"])
def test_a_compressed_body_is_a_415_that_says_to_send_it_uncompressed(encoding):
    body = gzip.compress(json.dumps({"pixels": ONE}).encode())
    request = request_with_headers(body, Content_Type="application/json", Content_Encoding=encoding)
    response = call(handlers.predict, request, services)
    assert response.status_code == 415
    assert "uncompressed" in problem_of(response)["detail"]
    assert encoding.lower() not in response.get_body().decode().lower()  # no echo
    assert response.headers["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("encoding", ["identity", "", " Identity "])
def test_an_identity_content_encoding_is_no_compression(digits, encoding):
    images, labels = digits
    body = json.dumps({"pixels": images[0].ravel().tolist()}).encode()
    request = request_with_headers(body, Content_Type="application/json", Content_Encoding=encoding)
    assert_prediction(call(handlers.predict, request, services), int(labels[0]))


def test_a_compressed_picture_is_a_415_too(digits):
    images, _ = digits
    body = gzip.compress(picture_of_digit(images[0]))
    request = request_with_headers(body, Content_Type="image/png", Content_Encoding="gzip")
    assert call(handlers.predict, request, services).status_code == 415


def test_a_picture_over_the_pixel_limit_is_a_413():
    width = preprocessing.MAX_SIDE
    buffer = io.BytesIO()  # 16.4 Mpx of PNG in a few kB: refused from its header
    Image.new("1", (width, preprocessing.MAX_PIXELS // width + 50)).save(buffer, format="PNG")
    response = call(
        handlers.predict,
        request_with_headers(buffer.getvalue(), Content_Type="image/png"),
        services,
    )
    assert response.status_code == 413
    detail = problem_of(response)["detail"]
    assert "the picture is too large" in detail
    assert f"at most {preprocessing.MAX_PIXELS}" in detail


def test_a_16_bit_grey_png_is_classified(digits):
    images, labels = digits
    for image, label in zip(images[::4], labels[::4], strict=True):
        page = np.full((240, 300), 0xF0, dtype=np.uint16)
        enlarged = np.kron(image, np.ones((6, 6), dtype=np.uint8)).astype(np.uint16)
        page[30:198, 100:268] = 0xF0 - enlarged * 0xA0 // 255  # pencil grey, not black, ink
        request = request_with_headers(png_of(page * 257), Content_Type="image/png")
        assert_prediction(call(handlers.predict, request, services), int(label))


def test_an_opaque_one_with_one_pixel_of_alpha_254_reads_as_one(mnist):
    labels = mnist["y_test"]
    one = mnist["x_test"][np.flatnonzero(labels == 1)[0]]
    ink = np.kron(one, np.ones((8, 8), dtype=np.uint8))
    grey = np.full((300, 300), 255, dtype=np.uint8)
    grey[40:264, 40:264] = 255 - ink
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    opaque_answer = body_of(
        call(
            handlers.predict, request_with_headers(png_of(rgba), Content_Type="image/png"), services
        )
    )
    row, column = np.argwhere(grey < 128)[0]
    rgba[row, column, 3] = 254  # one pixel of the stroke, very slightly translucent
    response = call(
        handlers.predict, request_with_headers(png_of(rgba), Content_Type="image/png"), services
    )
    answer = assert_prediction(response, 1)
    assert answer["probabilities"] == opaque_answer["probabilities"]


def test_busy_picture_decoders_are_a_503_with_retry_after(digits, monkeypatch):
    images, _ = digits
    monkeypatch.setattr(preprocessing, "DECODE_SLOT_WAIT_SECONDS", 0.2)
    taken = 0
    try:
        while preprocessing._decode_slots.acquire(blocking=False):
            taken += 1
        request = request_with_headers(picture_of_digit(images[0]), Content_Type="image/png")
        response = call(handlers.predict, request, services)
        json_request = http_request("POST", "predict", {"pixels": images[0].ravel().tolist()})
        json_response = call(handlers.predict, json_request, services)
    finally:
        for _ in range(taken):
            preprocessing._decode_slots.release()
    assert taken == preprocessing.MAX_CONCURRENT_DECODES
    assert response.status_code == 503
    assert response.headers["Retry-After"] == DECODERS_BUSY_RETRY_AFTER
    assert "retry" in problem_of(response)["detail"]
    assert json_response.status_code == 200  # JSON pixels need no decoder: still served


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "image/gif"]
)
def test_unsupported_content_type_is_a_415(content_type):
    request = http_request("POST", "predict", json.dumps(ONE), content_type=content_type)
    response = call(handlers.predict, request, services)
    assert response.status_code == 415
    detail = problem_of(response)["detail"]
    assert "application/json, image/png or image/jpeg" in detail
    assert content_type not in detail  # no echo of the request


@pytest.mark.parametrize(
    ("function", "method", "allowed"),
    [
        (handlers.predict, "GET", "POST"),
        (handlers.predict, "PUT", "POST"),
        (handlers.health, "POST", "GET"),
        (handlers.models, "DELETE", "GET"),
        (handlers.openapi, "PATCH", "GET"),
    ],
)
def test_wrong_method_is_a_405_with_allow(function, method, allowed):
    response = call(function, http_request(method, "x", b""), services)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert allowed in problem_of(response)["detail"]


# --- health, models, openapi ----------------------------------------------------------------


def test_health_names_the_served_model():
    response = call(handlers.health, http_request("GET", "health"), services)
    assert response.status_code == 200
    health = body_of(response)
    assert health["status"] == "ok"
    model = health["model"]
    assert model["source"] == "bundled"
    assert len(model["sha256"]) == 64
    assert model["loaded_at"].endswith("Z")
    assert model["version"] == response.headers["X-Model-Version"]


def test_health_is_503_when_no_model_can_be_served(tmp_path):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx file")
    broken_services = Services(bundled_path=broken)
    response = call(handlers.health, http_request("GET", "health"), broken_services)
    assert response.status_code == 503
    assert "bundled model cannot be loaded" in body_of(response)["detail"]
    prediction = call(handlers.predict, http_request("POST", "predict", ONE), broken_services)
    assert prediction.status_code == 503
    assert problem_of(prediction)["title"] == "Service Unavailable"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_model_that_answers_nan_or_infinity_gets_a_503_never_a_wrong_answer(
    tmp_path, digits, value, caplog
):
    path = tmp_path / "model.onnx"
    path.write_bytes(bad_models.nan_on_cue_model_bytes("cued", value))
    cued_services = Services(bundled_path=path)
    images, labels = digits
    cued = images[:3].copy()
    cued[1, 0, 0] = 255  # the cue: ink in the top-left corner

    assert_prediction(
        call(handlers.predict, http_request("POST", "predict", cued[0].tolist()), cued_services),
        labels[0],
    )
    for body in (cued[1].tolist(), {"pixels": cued[1].tolist()}, {"images": cued.tolist()}):
        response = call(handlers.predict, http_request("POST", "predict", body), cued_services)
        assert response.status_code == 503
        assert problem_of(response)["detail"] == (
            "the served model gave an unusable answer; it has been logged"
        )
    assert "the model answered a probability that is NaN or infinite" in caplog.text


def test_models_lists_the_current_version():
    answer = body_of(call(handlers.models, http_request("GET", "models"), services))
    assert answer["current"]["source"] == "bundled"
    assert answer["versions"][0]["version"] == answer["current"]["version"]
    assert answer["decisions"] == []


def test_openapi_document_describes_every_route():
    response = call(handlers.openapi, http_request("GET", "openapi.json"), services)
    document = body_of(response)
    assert document["openapi"] == "3.1.0"
    v2_model = "/v2/models/{name}"
    v2_version = f"{v2_model}/versions/{{version}}"
    assert set(document["paths"]) == {
        "/predict",
        "/feedback",
        "/health",
        "/models",
        "/openapi.json",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        *(f"{model}{suffix}" for model in (v2_model, v2_version) for suffix in ("", "/ready")),
        f"{v2_model}/infer",
        f"{v2_version}/infer",
    }
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert {"200", "400", "404", "405", "413", "415"} <= set(infer["responses"])
    predict = document["paths"]["/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"application/json", "image/png", "image/jpeg"}
    assert {"200", "400", "405", "413", "415"} <= set(predict["responses"])


def test_an_image_alone_is_answered_as_in_a_batch(digits):
    images, _ = digits
    batch = call(
        handlers.predict, http_request("POST", "predict", {"images": images.tolist()}), services
    )
    in_batch = body_of(batch)["predictions"]
    for image, expected in zip(images, in_batch, strict=True):
        alone = body_of(
            call(handlers.predict, http_request("POST", "predict", image.tolist()), services)
        )
        assert {key: alone[key] for key in expected} == expected
