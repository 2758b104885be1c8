"""The same HTTP requests through the real worker and through the local host get the same
answers: status, content type, body and X-Model-Version."""

from __future__ import annotations

import http.client
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from tests.helpers import picture_of_digit
from tests.stack import running_local_host

ROUTE_PREFIX = "/api/"
# Fields that say when something happened or how long ago: they differ between two processes
# however faithful, so they are removed (at any depth) before bodies are compared.
VARYING_FIELDS = {
    "loaded_at",  # /api/health: when this process loaded its model
    "last_check_at",  # /api/health storage: this process's last look at current.json
    "last_reached_at",
    "seconds_since_reached",
    "as_of",  # /api/models listing: this process's last refresh
    "age_seconds",
}
INK = [0] * 300 + [255] * 100 + [0] * 384


@dataclass(frozen=True)
class Request:
    name: str
    method: str
    route: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    model_version: str | None
    body: object

    @classmethod
    def of(cls, method: str, status: int, headers: dict[str, str], body: bytes) -> Answer:
        headers = {name.lower(): value for name, value in headers.items()}
        content_type = headers.get("content-type", "")
        if method == "HEAD":
            body = b""  # the host sends no body to a HEAD, whatever the function returned
        return cls(status, content_type, headers.get("x-model-version"), comparable(body))


def comparable(body: bytes) -> object:
    try:
        document = json.loads(body)
    except ValueError:
        return body
    return without_varying_fields(document)


def without_varying_fields(document: object) -> object:
    if isinstance(document, dict):
        return {
            key: without_varying_fields(value)
            for key, value in document.items()
            if key not in VARYING_FIELDS
        }
    if isinstance(document, list):
        return [without_varying_fields(value) for value in document]
    return document


def json_body(document: object) -> bytes:
    return json.dumps(document).encode()


def requests(mnist) -> list[Request]:
    digit = mnist["x_test"][0]
    png = picture_of_digit(digit)
    jpeg = picture_of_digit(digit, image_format="JPEG")
    correction = {"pixels": INK, "predicted": 5, "label": 3, "model_version": "mnist-cnn-1.2.0"}
    return [
        Request("pixels, 784", "POST", "predict", json_body({"pixels": INK})),
        Request(
            "pixels, 28x28",
            "POST",
            "predict",
            json_body({"pixels": [INK[i : i + 28] for i in range(0, 784, 28)]}),
        ),
        Request("bare array", "POST", "predict", json_body(INK)),
        Request("batch of 2", "POST", "predict", json_body({"images": [INK, [0] * 784]})),
        Request("PNG", "POST", "predict", png, (("Content-Type", "image/png"),)),
        Request("JPEG", "POST", "predict", jpeg, (("Content-Type", "image/jpeg"),)),
        Request("invalid JSON", "POST", "predict", b'{"pixels": [1, 2'),
        Request("wrong shape", "POST", "predict", json_body({"pixels": [0] * 783})),
        Request("out of range", "POST", "predict", json_body({"pixels": [300] * 784})),
        Request(
            "blank picture",
            "POST",
            "predict",
            picture_of_digit(digit * 0),
            (("Content-Type", "image/png"),),
        ),
        Request("JSON over 4 MiB", "POST", "predict", b"[" + b"0," * (5 * 2**19) + b"0]"),
        Request("text/plain", "POST", "predict", b"hello", (("Content-Type", "text/plain"),)),
        Request(
            "gzip",
            "POST",
            "predict",
            json_body({"pixels": INK}),
            (("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
        ),
        Request("GET predict", "GET", "predict", headers=()),
        Request("HEAD predict", "HEAD", "predict", headers=()),
        # No Origin: a CORS preflight is the host's to answer, this OPTIONS reaches the function.
        Request("OPTIONS predict", "OPTIONS", "predict", headers=()),
        Request("correction", "POST", "feedback", json_body(correction)),
        Request("right answer", "POST", "feedback", json_body({**correction, "label": 5})),
        Request("text/plain", "POST", "feedback", b"hello", (("Content-Type", "text/plain"),)),
        Request("GET feedback", "GET", "feedback", headers=()),
        Request("GET health", "GET", "health", headers=()),
        Request("HEAD health", "HEAD", "health", headers=()),
        Request("POST health", "POST", "health", json_body({})),
        Request("GET models", "GET", "models", headers=()),
        Request("HEAD models", "HEAD", "models", headers=()),
        Request("DELETE models", "DELETE", "models", headers=()),
        Request("GET openapi", "GET", "openapi.json", headers=()),
        Request("HEAD openapi", "HEAD", "openapi.json", headers=()),
        Request("PUT openapi", "PUT", "openapi.json", b"{}"),
        Request("OPTIONS openapi", "OPTIONS", "openapi.json", headers=()),
        *v2_requests(digit),
    ]


def v2_requests(digit) -> list[Request]:
    """The Open Inference Protocol routes: health, metadata, JSON and binary inference, errors."""
    model = "v2/models/mnist-cnn"
    tensor = {"name": "pixels", "shape": [1, 784], "datatype": "UINT8"}
    as_json = {
        "id": "7",
        "inputs": [{**tensor, "data": digit.ravel().tolist()}],
        "outputs": [{"name": "probabilities"}, {"name": "digit"}],
    }
    header = json_body(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": 784}}],
            "parameters": {"binary_data_output": True},
        }
    )
    binary = (("Inference-Header-Content-Length", str(len(header))),)
    wrong_shape = {"inputs": [{**tensor, "shape": [1, 10], "data": [0] * 10}]}
    return [
        Request("V2 server metadata", "GET", "v2", headers=()),
        Request("V2 live", "GET", "v2/health/live", headers=()),
        Request("V2 ready", "GET", "v2/health/ready", headers=()),
        Request("V2 model metadata", "GET", model, headers=()),
        Request("V2 model ready", "GET", f"{model}/ready", headers=()),
        Request("V2 unknown model", "GET", "v2/models/resnet50/ready", headers=()),
        Request("V2 other version", "GET", f"{model}/versions/0.0.1", headers=()),
        Request("V2 JSON infer", "POST", f"{model}/infer", json_body(as_json)),
        Request("V2 binary infer", "POST", f"{model}/infer", header + digit.tobytes(), binary),
        Request("V2 wrong shape", "POST", f"{model}/infer", json_body(wrong_shape)),
        Request(
            "V2 header past the body",
            "POST",
            f"{model}/infer",
            header + digit.tobytes(),
            (("Inference-Header-Content-Length", "99999"),),
        ),
        Request("V2 GET infer", "GET", f"{model}/infer", headers=()),
    ]


@pytest.fixture(scope="module")
def local_host(conformance_storage, tmp_path_factory) -> Iterator[str]:
    """The local host on the worker's storage settings; stopped with this module, so that its
    timer cannot decide on what the trigger tests drop."""
    log_path = tmp_path_factory.mktemp("conformance-local-host") / "host.log"
    with running_local_host({**os.environ, **conformance_storage}, log_path) as url:
        yield url


def route_parameters(template: str, route: str) -> dict[str, str] | None:
    """The parameters of `route` if it matches the route `template` (literal segments and
    plain {name} parameters, one segment each, as the host routes them), else None."""
    pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
    match = re.fullmatch(pattern, route)
    return match.groupdict() if match else None


def through_worker(worker, request: Request) -> Answer:
    routed = [
        (name, parameters)
        for name, metadata in worker.functions.items()
        for binding in map(json.loads, metadata.raw_bindings)
        if "route" in binding
        and (parameters := route_parameters(binding["route"], request.route)) is not None
    ]
    # A literal route wins over a template, as in the host's routing.
    function, parameters = min(routed, key=lambda match: len(match[1]))
    answer = worker.call_http(
        function,
        request.method,
        f"http://localhost:7071{ROUTE_PREFIX}{request.route}",
        dict(request.headers),
        request.body,
        params=parameters,
    )
    return Answer.of(
        request.method, int(answer.status_code), dict(answer.headers), answer.body.bytes
    )


def through_local_host(base_url: str, request: Request) -> Answer:
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    try:
        connection.request(
            request.method,
            f"{ROUTE_PREFIX}{request.route}",
            body=request.body if request.body or request.method not in {"GET", "HEAD"} else None,
            headers=dict(request.headers),
        )
        response = connection.getresponse()
        return Answer.of(
            request.method, response.status, dict(response.getheaders()), response.read()
        )
    finally:
        connection.close()


def test_the_worker_and_the_local_host_answer_alike(worker, local_host, mnist):
    # Both have served a request before the table: each loads the model on first use.
    through_worker(worker, Request("warm-up", "GET", "health", headers=()))
    rows = []
    for request in requests(mnist):
        by_worker = through_worker(worker, request)
        by_local_host = through_local_host(local_host, request)
        rows.append((request, by_worker, by_local_host))

    width = max(len(request.name) for request, _, _ in rows)
    print(f"\n{'request':<{width}}  {'method':<7} worker  local host  equal")
    for request, by_worker, by_local_host in rows:
        equal = "yes" if by_worker == by_local_host else "NO"
        print(
            f"{request.name:<{width}}  {request.method:<7} {by_worker.status:<7} "
            f"{by_local_host.status:<11} {equal}"
        )
    print(f"{sum(w == h for _, w, h in rows)} of {len(rows)} requests answered alike")

    different = [(request.name, w, h) for request, w, h in rows if w != h]
    assert different == []
