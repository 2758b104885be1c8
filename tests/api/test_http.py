"""The function app over real HTTP, through the local host started as `make run` starts it."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import urllib.error
import urllib.parse
import urllib.request

import aiohttp
import numpy as np
import pytest

from tests.helpers import picture_of_digit

pytestmark = pytest.mark.slow


def send(
    url: str, body: bytes | None = None, *, method: str = "POST", content_type="application/json"
):
    """(status, headers, parsed body) of one real HTTP request."""
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def test_each_json_form_over_http(base_url, mnist):
    image, label = mnist["x_test"][0], int(mnist["y_test"][0])
    forms = [
        {"pixels": image.ravel().tolist()},
        {"pixels": image.tolist()},
        image.ravel().tolist(),
    ]
    for form in forms:
        status, headers, answer = send(f"{base_url}/predict", json.dumps(form).encode())
        assert status == 200
        assert answer["prediction"] == label
        assert headers["X-Model-Version"] == answer["model_version"]
        assert headers["Content-Type"].startswith("application/json")


def test_batch_and_picture_over_http(base_url, mnist):
    images, labels = mnist["x_test"][:16], mnist["y_test"][:16]
    body = json.dumps({"images": [image.tolist() for image in images]}).encode()
    status, _, answer = send(f"{base_url}/predict", body)
    assert status == 200
    predicted = [item["prediction"] for item in answer["predictions"]]
    assert np.mean(np.array(predicted) == labels) >= 15 / 16
    picture = picture_of_digit(images[1], inverted=True, image_format="JPEG")
    status, _, answer = send(f"{base_url}/predict", picture, content_type="image/jpeg")
    assert status == 200
    assert answer["prediction"] == int(labels[1])


@pytest.mark.parametrize(
    ("body", "method", "content_type", "status"),
    [
        (b"{not json", "POST", "application/json", 400),
        (json.dumps([0] * 783).encode(), "POST", "application/json", 400),
        (b"[NaN" + b",0" * 783 + b"]", "POST", "application/json", 400),
        (b"\x89PNGbroken", "POST", "image/png", 400),
        (b" " * (4 * 1024 * 1024 + 1), "POST", "application/json", 413),
        (b"[]", "POST", "text/csv", 415),
        (None, "GET", None, 405),
    ],
    ids=["invalid JSON", "wrong length", "NaN", "broken PNG", "too large", "CSV", "GET"],
)
def test_bad_requests_over_http(base_url, body, method, content_type, status):
    got, headers, problem = send(
        f"{base_url}/predict", body, method=method, content_type=content_type
    )
    assert got == status
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == status
    assert problem["detail"]


def test_health_models_openapi_over_http(base_url):
    for route in ("health", "models", "openapi.json"):
        status, _, body = send(f"{base_url}/{route}", method="GET", content_type=None)
        assert status == 200, route
        assert body
    status, _, _ = send(f"{base_url}/nowhere", method="GET", content_type=None)
    assert status == 404


def test_200_concurrent_requests_all_answered_correctly(base_url, mnist):
    images, labels = mnist["x_test"][:200], mnist["y_test"][:200]

    async def one(session: aiohttp.ClientSession, image: np.ndarray) -> int:
        async with session.post(f"{base_url}/predict", json={"pixels": image.tolist()}) as reply:
            assert reply.status == 200
            return (await reply.json())["prediction"]

    async def all_at_once() -> list[int]:
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await asyncio.gather(*(one(session, image) for image in images))

    predicted = asyncio.run(all_at_once())
    # The same answers as one at a time: the bundled model gets at most a couple of these wrong.
    assert len(predicted) == 200
    assert np.sum(np.array(predicted) != labels) <= 2


def test_head_on_get_routes_answers_without_a_body(base_url):
    for route in ("health", "models", "openapi.json"):
        request = urllib.request.Request(f"{base_url}/{route}", method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, route
            assert response.headers["Content-Type"].startswith("application/json"), route
            assert response.read() == b"", route
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            urllib.request.Request(f"{base_url}/predict", method="HEAD"), timeout=10
        )
    assert refused.value.code == 405
    assert refused.value.headers["Allow"] == "POST"
    assert refused.value.read() == b""


def test_a_body_over_the_hosts_limit_is_refused_before_it_is_sent(base_url):
    # local.settings.example.json sets FUNCTIONS_REQUEST_BODY_SIZE_LIMIT to 9 MiB.
    url = urllib.parse.urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=20) as connection:
        connection.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\n"
            b"Content-Length: 104857600\r\n\r\n"
        )
        answer = connection.makefile("rb")
        status_line = answer.readline()
        headers = {}
        while (line := answer.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        problem = json.loads(answer.read(int(headers["content-length"])))
    assert status_line.split()[1] == b"413"
    assert headers["content-type"] == "application/problem+json"
    assert "9437184" in problem["detail"]


def test_an_encoded_body_reaches_the_app_as_sent_and_is_refused(base_url):
    body = gzip.compress(json.dumps([0] * 784).encode())
    request = urllib.request.Request(f"{base_url}/predict", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Content-Encoding", "gzip")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 415
    assert refused.value.headers["Content-Type"].startswith("application/problem+json")


def test_cross_origin_calls_follow_host_cors(base_url):
    # local.settings.example.json allows any origin ("Host": {"CORS": "*"}), as Core Tools does.
    request = urllib.request.Request(f"{base_url}/predict", method="OPTIONS")
    request.add_header("Origin", "http://page.test")
    request.add_header("Access-Control-Request-Method", "POST")
    request.add_header("Access-Control-Request-Headers", "content-type")
    with urllib.request.urlopen(request, timeout=10) as preflight:
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
        assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
    request = urllib.request.Request(f"{base_url}/health", headers={"Origin": "http://page.test"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
