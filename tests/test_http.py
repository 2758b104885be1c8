"""The function app over real HTTP, through the local host started as `make run` starts it."""

from __future__ import annotations

import asyncio
import json
import urllib.error
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
