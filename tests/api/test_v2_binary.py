"""The binary tensor data extension against hostile requests: lengths and sizes that lie, bytes
that do not match the shape. Each is a 4xx with the protocol's {"error": "..."} body, never a
500 or a hang; in process (real `func.HttpRequest`) and over real HTTP through the local host."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import azure.functions as func
import numpy as np
import pytest

from functions.api import v2_handlers
from functions.api.v2_model import MODEL_NAME
from functions.api.v2_request import MAX_BODY_BYTES, MAX_HEADER_BYTES
from functions.composition import Services
from tests import bad_models
from tests.helpers import call

services = Services()
INFER = f"v2/models/{MODEL_NAME}/infer"
ONE_IMAGE = 784  # bytes of one UINT8 image; four times that as FP32


def binary_request(
    pixels: bytes,
    *,
    shape=(1, 784),
    datatype="UINT8",
    size: object = None,
    header_length: object = None,
    extra: bytes = b"",
    outputs: list | None = None,
) -> tuple[bytes, str]:
    """A binary infer request: its body and Inference-Header-Content-Length, each with the
    chosen lie (`size`: binary_data_size, `header_length`, `extra` bytes after the data)."""
    header = {
        "inputs": [
            {
                "name": "pixels",
                "shape": list(shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(pixels) if size is None else size},
            }
        ]
    }
    if outputs is not None:
        header["outputs"] = outputs
    encoded = json.dumps(header).encode()
    length = len(encoded) if header_length is None else header_length
    return encoded + pixels + extra, str(length)


def header_then(tensor_fields: dict, tail: bytes) -> tuple[bytes, str]:
    """A JSON header whose one UINT8 [1, 784] input has `tensor_fields`, then `tail`."""
    tensor = {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", **tensor_fields}
    encoded = json.dumps({"inputs": [tensor]}).encode()
    return encoded + tail, str(len(encoded))


def infer_request(
    body: bytes, header_length: str | None = None, *, route: str = INFER, **headers: str
) -> func.HttpRequest:
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    name, _, version = route.removeprefix("v2/models/").removesuffix("/infer").partition("/")
    params = {"name": name}
    if version:
        params["version"] = version.removeprefix("versions/")
    return func.HttpRequest(
        "POST",
        f"http://localhost:7071/api/{route}",
        headers=headers,
        body=body,
        route_params=params,
    )


def error_of(response: func.HttpResponse) -> str:
    assert response.mimetype == "application/json"
    body = json.loads(response.get_body())
    assert set(body) == {"error"}
    return body["error"]


@pytest.fixture(scope="module")
def digit(mnist) -> tuple[np.ndarray, int]:
    return mnist["x_test"][0], int(mnist["y_test"][0])


# --- what works, in process ------------------------------------------------------------------


def test_binary_in_and_out_in_process(digit):
    image, label = digit
    outputs = [
        {"name": "digit", "parameters": {"binary_data": True}},
        {"name": "probabilities", "parameters": {"binary_data": False}},
    ]
    body, length = binary_request(image.astype(np.uint8).tobytes(), outputs=outputs)
    response = call(v2_handlers.infer, infer_request(body, length), services)
    assert response.status_code == 200, response.get_body()
    assert response.mimetype == "application/octet-stream"
    answer = response.get_body()
    header_length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(answer[:header_length])
    assert [output["name"] for output in header["outputs"]] == ["digit", "probabilities"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert np.frombuffer(answer[header_length:], dtype="<i8").tolist() == [label]
    assert np.argmax(header["outputs"][1]["data"]) == label
    assert header["model_version"] == response.headers["X-Model-Version"]


def test_a_model_that_answers_nan_is_a_503_not_a_tensor(tmp_path, digit):
    path = tmp_path / "model.onnx"
    path.write_bytes(bad_models.nan_on_cue_model_bytes("cued"))
    cued_services = Services(bundled_path=path)
    image = digit[0].astype(np.uint8)
    honest = call(v2_handlers.infer, infer_request(*binary_request(image.tobytes())), cued_services)
    assert honest.status_code == 200, honest.get_body()
    cued = image.copy()
    cued[0, 0] = 255  # the cue: ink in the top-left corner
    tensor = {"name": "pixels", "shape": [1, 784], "datatype": "UINT8"}
    in_json = json.dumps({"inputs": [{**tensor, "data": cued.ravel().tolist()}]}).encode()
    for request in (infer_request(*binary_request(cued.tobytes())), infer_request(in_json)):
        response = call(v2_handlers.infer, request, cued_services)
        assert response.status_code == 503
        assert error_of(response) == "the served model gave an unusable answer; it has been logged"


def test_id_and_parameters_are_echoed(digit):
    image, label = digit
    request = {
        "id": "abc",
        "parameters": {"binary_data_output": False, "trace": "on", "priority": 1},
        "inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8"}],
        "outputs": [{"name": "digit"}],
    }
    request["inputs"][0]["data"] = image.tolist()  # nested, as the protocol allows
    response = call(v2_handlers.infer, infer_request(json.dumps(request).encode()), services)
    assert response.status_code == 200, response.get_body()
    answer = json.loads(response.get_body())
    assert answer["id"] == "abc"
    assert answer["parameters"] == request["parameters"]
    assert answer["outputs"] == [
        {"name": "digit", "datatype": "INT64", "shape": [1], "data": [label]}
    ]


def test_parameters_at_their_limits_are_echoed_whole(digit):
    image, _ = digit
    parameters = {f"{i:02d}" + "n" * 62: "v" * 256 for i in range(64)}
    request = {
        "parameters": parameters,
        "inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "UINT8"}],
    }
    request["inputs"][0]["data"] = image.ravel().tolist()
    response = call(v2_handlers.infer, infer_request(json.dumps(request).encode()), services)
    assert response.status_code == 200, response.get_body()
    assert json.loads(response.get_body())["parameters"] == parameters
    assert len(response.get_body()) < 32 * 1024  # the most a response echoes


def test_a_served_version_answers_and_another_is_a_404_naming_it(digit, bundled):
    image, _ = digit
    body, length = binary_request(image.astype(np.uint8).tobytes())
    served = f"v2/models/{MODEL_NAME}/versions/{bundled.version}/infer"
    assert (
        call(v2_handlers.infer, infer_request(body, length, route=served), services).status_code
        == 200
    )
    other = f"v2/models/{MODEL_NAME}/versions/0.0.1/infer"
    response = call(v2_handlers.infer, infer_request(body, length, route=other), services)
    assert response.status_code == 404
    assert bundled.version in error_of(response)


def test_without_a_model_the_server_is_live_but_not_ready(tmp_path):
    broken_services = Services(bundled_path=tmp_path / "missing.onnx")

    def get(route: str) -> func.HttpRequest:
        return func.HttpRequest(
            "GET", f"http://localhost/api/{route}", body=b"", route_params={"name": MODEL_NAME}
        )

    assert call(v2_handlers.live, get("v2/health/live"), broken_services).status_code == 200
    for handler, route in (
        (v2_handlers.ready, "v2/health/ready"),
        (v2_handlers.model_ready, f"v2/models/{MODEL_NAME}/ready"),
        (v2_handlers.model_metadata, f"v2/models/{MODEL_NAME}"),
    ):
        response = call(handler, get(route), broken_services)
        assert response.status_code == 503
        assert "no model can be served" in error_of(response)


def test_a_wrong_method_is_a_405_with_allow_in_the_protocols_error_body():
    request = func.HttpRequest("GET", f"http://localhost/api/{INFER}", body=b"")
    response = call(v2_handlers.infer, request, services)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "use POST" in error_of(response)


# --- hostile binary requests -----------------------------------------------------------------

PIXELS = bytes(ONE_IMAGE)
HOSTILE = {
    "header length past the body": (binary_request(PIXELS, header_length=10**6), "body has"),
    "header length of zero": (binary_request(PIXELS, header_length=0), "body has"),
    "negative header length": (binary_request(PIXELS, header_length=-5), "whole number"),
    "header length not a number": (binary_request(PIXELS, header_length="12abc"), "whole number"),
    "huge header length": (binary_request(PIXELS, header_length="9" * 40), "whole number"),
    "header length inside the JSON": (binary_request(PIXELS, header_length=20), "not valid JSON"),
    "negative binary_data_size": (binary_request(PIXELS, size=-1), "whole number of bytes"),
    "huge binary_data_size": (binary_request(PIXELS, size=2**63), "bytes follow"),
    "float binary_data_size": (binary_request(PIXELS, size=784.0), "whole number of bytes"),
    "boolean binary_data_size": (binary_request(PIXELS, size=True), "whole number of bytes"),
    "string binary_data_size": (binary_request(PIXELS, size="784"), "whole number of bytes"),
    "sizes that do not add up": (binary_request(PIXELS, extra=b"\0" * 16), "add up to"),
    "binary_data_size short of the bytes": (binary_request(PIXELS, size=700), "add up to"),
    "bytes short of the shape": (binary_request(PIXELS, shape=(2, 784)), "need 1568"),
    "bytes past the shape": (binary_request(PIXELS * 2, shape=(1, 784)), "need 784"),
    "FP32 bytes for UINT8": (binary_request(PIXELS * 4, datatype="UINT8"), "need 784"),
    "UINT8 bytes for FP32": (binary_request(PIXELS, datatype="FP32"), "need 3136"),
    "NaN in FP32 bytes": (
        binary_request(np.full(784, np.nan, dtype="<f4").tobytes(), datatype="FP32"),
        "NaN or infinite",
    ),
    "FP32 bytes out of range": (
        binary_request(np.full(784, 1e6, dtype="<f4").tobytes(), datatype="FP32"),
        "outside 0..255",
    ),
    "a shape of a billion images": (binary_request(PIXELS, shape=(10**9, 784)), "N from 1"),
    "a negative shape": (binary_request(PIXELS, shape=(-1, 784)), "N from 1"),
    "binary data with no binary input": (
        header_then({"data": [0] * 784}, PIXELS),
        "no input has binary_data_size",
    ),
    "both data and binary_data_size": (
        header_then({"data": [0] * 784, "parameters": {"binary_data_size": 784}}, PIXELS),
        "send one",
    ),
    "a binary output flag that is not a boolean": (
        binary_request(PIXELS, outputs=[{"name": "digit", "parameters": {"binary_data": 1}}]),
        "true or false",
    ),
    "shared memory asked for": (
        binary_request(
            PIXELS, outputs=[{"name": "digit", "parameters": {"shared_memory_region": "x"}}]
        ),
        "does not know",
    ),
    "an output asked for twice": (
        binary_request(PIXELS, outputs=[{"name": "digit"}, {"name": "digit"}]),
        "twice",
    ),
    "an unknown output": (binary_request(PIXELS, outputs=[{"name": "logits"}]), "named one of"),
}


@pytest.mark.parametrize(("request_parts", "says"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_binary_requests_are_a_400_that_says_what_is_wrong(request_parts, says):
    body, length = request_parts
    response = call(v2_handlers.infer, infer_request(body, length), services)
    assert response.status_code == 400, response.get_body()
    assert says in error_of(response)


BAD_JSON = {
    "empty body": (b"", "body is empty"),
    "not JSON": (b'{"inputs": [', "not valid JSON"),
    "NaN": (b'{"inputs": [{"name": "pixels", "data": [NaN]}]}', "NaN is not"),
    "an array": (b"[]", "JSON object"),
    "unknown field": (b'{"inputs": [], "model": "x"}', "does not know: 'model'"),
    "no inputs": (b"{}", '"inputs" must hold one tensor'),
    "two inputs": (
        json.dumps({"inputs": [{"name": "pixels"}, {"name": "pixels"}]}).encode(),
        "one tensor",
    ),
    "another input name": (
        json.dumps({"inputs": [{"name": "x", "shape": [1, 784], "datatype": "UINT8"}]}).encode(),
        'named "pixels"',
    ),
    "a boolean in the shape": (
        json.dumps(
            {
                "inputs": [
                    {"name": "pixels", "shape": [True, 784], "datatype": "UINT8", "data": [0] * 784}
                ]
            }
        ).encode(),
        "must have shape",
    ),
    "too few values": (
        json.dumps(
            {
                "inputs": [
                    {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 783}
                ]
            }
        ).encode(),
        "783 values",
    ),
    "a float in UINT8": (
        json.dumps(
            {
                "inputs": [
                    {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": [0.5] * 784}
                ]
            }
        ).encode(),
        "integer 0..255",
    ),
    "a boolean among UINT8 integers": (
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [1, 784],
                        "datatype": "UINT8",
                        "data": [0] * 783 + [True],
                    }
                ]
            }
        ).encode(),
        "integer 0..255",
    ),
    "a boolean among FP32 numbers": (
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [1, 784],
                        "datatype": "FP32",
                        "data": [0.5] * 783 + [False],
                    }
                ]
            }
        ).encode(),
        "not a number",
    ),
    "a UINT8 value over 255": (
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [1, 784],
                        "datatype": "UINT8",
                        "data": [0] * 783 + [256],
                    }
                ]
            }
        ).encode(),
        "integer 0..255",
    ),
    "a datatype that is no string": (
        json.dumps(
            {"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": [], "data": [0] * 784}]}
        ).encode(),
        "datatype FP32 or UINT8",
    ),
    "a UINT8 value too large for any integer type": (
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [1, 784],
                        "datatype": "UINT8",
                        "data": [2**64 - 1] + [0] * 783,
                    }
                ]
            }
        ).encode(),
        "integer 0..255",
    ),
    "a negative UINT8 value beside a boolean parameter": (
        json.dumps(
            {
                "parameters": {"binary_data_output": False},
                "inputs": [
                    {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": [-1] * 784}
                ],
            }
        ).encode(),
        "integer 0..255",
    ),
    "arrays and numbers mixed": (
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [1, 28, 28],
                        "datatype": "UINT8",
                        "data": [[0] * 28] * 27 + [0],
                    }
                ]
            }
        ).encode(),
        "mixes arrays and numbers",
    ),
    "a string in FP32": (
        json.dumps(
            {
                "inputs": [
                    {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": ["1"] * 784}
                ]
            }
        ).encode(),
        "not a number",
    ),
    "an id that is not a string": (
        json.dumps(
            {
                "id": 5,
                "inputs": [
                    {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}
                ],
            }
        ).encode(),
        '"id" must be a string',
    ),
    "nested parameters": (
        json.dumps({"parameters": {"a": {"b": 1}}, "inputs": []}).encode(),
        "strings, numbers and booleans",
    ),
    # The request's parameters are echoed back: bounded, as the id is.
    "a parameter string of a megabyte": (
        json.dumps({"parameters": {"trace": "x" * 2**20}, "inputs": []}).encode(),
        "strings of at most 256 characters",
    ),
    "a parameter name of a megabyte": (
        json.dumps({"parameters": {"x" * 2**20: 1}, "inputs": []}).encode(),
        "names of at most 64 characters",
    ),
    "too many parameters": (
        json.dumps({"parameters": {f"p{i}": i for i in range(65)}, "inputs": []}).encode(),
        "at most 64 entries",
    ),
}


@pytest.mark.parametrize(("body", "says"), BAD_JSON.values(), ids=BAD_JSON.keys())
def test_bad_json_requests_are_a_400_that_says_what_is_wrong(body, says):
    response = call(v2_handlers.infer, infer_request(body), services)
    assert response.status_code == 400, response.get_body()
    assert says in error_of(response)


def test_a_compressed_body_is_a_415():
    body, length = binary_request(PIXELS)
    response = call(
        v2_handlers.infer, infer_request(body, length, **{"Content-Encoding": "gzip"}), services
    )
    assert response.status_code == 415
    assert "uncompressed" in error_of(response)


def test_a_body_or_header_over_the_limits_is_a_413():
    response = call(v2_handlers.infer, infer_request(b" " * (MAX_BODY_BYTES + 1)), services)
    assert response.status_code == 413
    assert "limit" in error_of(response)
    body = b" " * (MAX_HEADER_BYTES + 1) + PIXELS
    response = call(v2_handlers.infer, infer_request(body, str(MAX_HEADER_BYTES + 1)), services)
    assert response.status_code == 413
    assert "JSON header" in error_of(response)


# --- over real HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "header length past the body",
        "huge binary_data_size",
        "sizes that do not add up",
        "bytes short of the shape",
        "a shape of a billion images",
    ],
)
def test_hostile_binary_requests_over_http_are_a_400(base_url, name):
    (body, length), says = HOSTILE[name]
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(
            "POST",
            f"{address.path}/{INFER}",
            body=body,
            headers={"Inference-Header-Content-Length": length},
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 400
    assert says in answer["error"]
