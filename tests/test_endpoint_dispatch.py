"""Where a declared predict or infer runs: small JSON and binary bodies on the event loop (a
thread hop costs more than the work), pictures, large bodies and cold starts in a thread."""

from __future__ import annotations

import asyncio
import inspect
import threading

import azure.functions as func
import pytest

from functions.api.endpoint import ON_LOOP_MAX_BODY_BYTES, small_bodies_on_the_loop
from tests.helpers import http_request


def thread_of(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(threading.get_ident()))


def ran_on_the_loop(req: func.HttpRequest, *, ready: bool = True) -> bool:
    declared = small_bodies_on_the_loop(thread_of, ready=lambda: ready)

    async def call() -> bool:
        answer = await declared(req)
        return int(answer.get_body()) == threading.get_ident()

    return asyncio.run(call())


def test_a_small_json_body_runs_on_the_loop() -> None:
    assert ran_on_the_loop(http_request("POST", "predict", {"pixels": [0] * 784}))
    exactly_at_the_limit = b" " * ON_LOOP_MAX_BODY_BYTES
    assert ran_on_the_loop(http_request("POST", "predict", exactly_at_the_limit))
    binary = http_request("POST", "v2/models/x/infer", b"\0" * 784, content_type=None)
    assert ran_on_the_loop(binary)


@pytest.mark.parametrize(
    ("body", "content_type", "ready"),
    [
        (b" " * (ON_LOOP_MAX_BODY_BYTES + 1), "application/json", True),  # a batch
        (b"\x89PNG", "image/png", True),  # decoding may wait for a decoder
        (b"\xff\xd8", " Image/JPEG", True),
        (b"{}", "application/json", False),  # the model is still to load
    ],
)
def test_the_rest_runs_in_a_thread(body: bytes, content_type: str, ready: bool) -> None:
    req = http_request("POST", "predict", body, content_type=content_type)
    assert not ran_on_the_loop(req, ready=ready)


def test_the_declared_function_is_async_and_keeps_the_handlers_name() -> None:
    declared = small_bodies_on_the_loop(thread_of, ready=lambda: True)
    assert inspect.iscoroutinefunction(declared)
    assert declared.__name__ == "thread_of"
