"""Where a declared predict or infer runs: small JSON and binary bodies on the event loop (a
thread hop costs more than the work), pictures, large bodies and cold starts in a thread."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import threading
import uuid

import azure.functions as func
import pytest
from azure_functions_runtime.bindings.context import get_context

import function_app
from functions.api.endpoint import ON_LOOP_MAX_BODY_BYTES, small_bodies_on_the_loop
from functions.composition import Services
from functions.settings import MissingSetting
from local_host.rpc import protos
from tests.helpers import http_request


def runtime_context() -> func.Context:
    """The context the runtime hands a function that asks for one."""
    request = protos.InvocationRequest(invocation_id=str(uuid.uuid4()))
    return get_context(request, "predict", ".")


def no_settings():
    raise MissingSetting("MODELS_STORAGE")  # serving falls back to the bundled model


def thread_of(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(threading.get_ident()))


def ran_on_the_loop(req: func.HttpRequest, *, ready: bool = True) -> bool:
    declared = small_bodies_on_the_loop(thread_of, ready=lambda: ready)

    async def call() -> bool:
        answer = await declared(req, runtime_context())
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


def test_the_thread_names_the_invocation_as_the_workers_pool_does() -> None:
    seen = []

    def invocation_seen(req: func.HttpRequest) -> func.HttpResponse:
        seen.append(getattr(context.thread_local_storage, "invocation_id", None))
        return func.HttpResponse()

    context = runtime_context()
    declared = small_bodies_on_the_loop(invocation_seen, ready=lambda: False)
    asyncio.run(declared(http_request("POST", "predict", {}), context))
    assert seen == [context.invocation_id]


def test_the_declared_function_is_async_takes_the_context_and_keeps_the_name() -> None:
    declared = small_bodies_on_the_loop(thread_of, ready=lambda: True)
    assert inspect.iscoroutinefunction(declared)
    assert declared.__name__ == "thread_of"
    # What the worker reads to decide what to pass: the request and the invocation's context.
    assert list(inspect.signature(declared).parameters) == ["req", "context"]


@pytest.fixture(scope="module")
def declared():
    # get_functions() indexes an app once: a freshly built one for this module.
    return importlib.reload(function_app).app.get_functions()


@pytest.mark.parametrize("name", ["predict", "v2_infer", "v2_version_infer"])
def test_the_app_declares_predict_and_infer_this_way(declared, name: str) -> None:
    (function,) = [f for f in declared if f.get_function_name() == name]
    user_function = function.get_user_function()
    assert inspect.iscoroutinefunction(user_function)
    assert list(inspect.signature(user_function).parameters) == ["req", "context"]


def test_the_model_counts_as_loaded_only_once_it_is() -> None:
    services = Services(read_settings=no_settings)
    assert not services.model_is_loaded()
    services.provider.current()
    assert services.model_is_loaded()
