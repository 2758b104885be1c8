"""Where each function the app declares runs: every prediction (small or large, JSON, binary or
a picture, cold or warm) in the inference pool, never on the event loop; health and models on the
loop, answering while an inference hangs; and every function `async def`, so that the runtime's
own thread pool runs none of them (functions/pools.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import json
import threading
import time
import uuid

import azure.functions as func
import pytest
from azure_functions_runtime.bindings.context import get_context

import function_app
from functions.api import handlers
from functions.api.blueprint import api_blueprint
from functions.api.endpoint import bind, endpoint, in_pool
from functions.api.responses import v2_error_response
from functions.composition import Services
from functions.pools import Pool, Pools
from functions.settings import MissingSetting
from local_host.rpc import protos
from tests.helpers import http_request

SLOW_INFERENCE_SECONDS = 2.0


def runtime_context() -> func.Context:
    """The context the runtime hands a function that asks for one."""
    request = protos.InvocationRequest(invocation_id=str(uuid.uuid4()))
    return get_context(request, "predict", ".")


def no_settings():
    raise MissingSetting("MODELS_STORAGE")  # serving falls back to the bundled model


def thread_of(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(threading.current_thread().name)


def thread_name(req: func.HttpRequest) -> str:
    declared = in_pool(thread_of, Pool("test-inference", 2))

    async def call() -> str:
        return (await declared(req, runtime_context())).get_body().decode()

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"pixels": [0] * 784}).encode(), "application/json"),  # one small image
        (b" " * 700_000, "application/json"),  # a batch
        (b"\0" * 784, None),  # V2's binary tensor
        (b"\x89PNG", "image/png"),  # a picture to decode
        (b"\xff\xd8", " Image/JPEG"),
    ],
    ids=["one image", "a batch", "binary", "png", "jpeg"],
)
def test_every_prediction_runs_in_the_pool_never_on_the_loop(body: bytes, content_type) -> None:
    name = thread_name(http_request("POST", "predict", body, content_type=content_type))
    assert name.startswith("test-inference-pool")


def test_the_thread_names_the_invocation_as_the_runtimes_pool_does() -> None:
    seen = []

    def invocation_seen(req: func.HttpRequest) -> func.HttpResponse:
        seen.append(getattr(context.thread_local_storage, "invocation_id", None))
        return func.HttpResponse()

    context = runtime_context()
    pool = Pool("test-inference", 1)
    asyncio.run(in_pool(invocation_seen, pool)(http_request("POST", "predict", {}), context))
    # ...and forgets it afterwards: the next invocation in that thread is another one.
    asyncio.run(in_pool(invocation_seen, pool)(http_request("POST", "predict", {}), None))
    assert seen == [context.invocation_id, None]


def test_the_declared_function_is_async_takes_the_context_and_keeps_the_name() -> None:
    declared = in_pool(thread_of, Pool("test-inference", 1))
    assert inspect.iscoroutinefunction(declared)
    assert declared.__name__ == "thread_of"
    # What the worker reads to decide what to pass: the request and the invocation's context.
    assert list(inspect.signature(declared).parameters) == ["req", "context"]


def test_a_bound_handler_is_a_function_of_the_request_of_its_kind_and_name() -> None:
    services = Services(read_settings=no_settings)
    seen = []

    def plain(req: func.HttpRequest, services: Services) -> func.HttpResponse:
        seen.append(services)
        return func.HttpResponse()

    async def awaited(req: func.HttpRequest, services: Services) -> func.HttpResponse:
        seen.append(services)
        return func.HttpResponse()

    request = http_request("GET", "x")
    for handler in (plain, awaited):
        declared = bind(handler, services)
        assert declared.__name__ == handler.__name__
        assert inspect.iscoroutinefunction(declared) == inspect.iscoroutinefunction(handler)
        # What the worker reads to decide what to pass: the request alone, no `services` binding.
        assert list(inspect.signature(declared).parameters) == ["req"]
        answer = declared(request)
        assert (asyncio.run(answer) if inspect.iscoroutine(answer) else answer).status_code == 200
    assert seen == [services, services]


class RefusingPool(Pool):
    async def run(self, function, *args):
        raise MissingSetting("nothing to run on")  # no problem of problems.py: a 500


@pytest.mark.parametrize(
    ("answer_error", "content_type"),
    [({}, "application/problem+json"), ({"answer_error": v2_error_response}, "application/json")],
    ids=["our API", "V2"],
)
def test_a_pool_that_fails_is_answered_as_the_handler_would_be(
    answer_error, content_type: str, caplog
) -> None:
    declared = in_pool(endpoint("POST")(thread_of), RefusingPool("refusing", 1), **answer_error)
    answer = asyncio.run(declared(http_request("POST", "predict", {}), runtime_context()))
    assert answer.status_code == 500
    assert answer.mimetype == content_type
    assert "nothing to run on" not in answer.get_body().decode()  # logged, not told
    assert "nothing to run on" in caplog.text


@pytest.fixture(scope="module")
def declared():
    # get_functions() indexes an app once: a freshly built one for this module.
    return {f.get_function_name(): f for f in importlib.reload(function_app).app.get_functions()}


def test_every_function_the_app_declares_is_async(declared) -> None:
    """The runtime runs a plain function in its own thread pool, which the app then shares with
    nobody it can bound: the app declares none."""
    plain = [
        name
        for name, f in declared.items()
        if not inspect.iscoroutinefunction(f.get_user_function())
    ]
    assert plain == []
    assert {"predict", "feedback", "health", "models", "promote_model", "reconcile_incoming"} <= (
        declared.keys()
    )


@pytest.mark.parametrize(
    "name",
    ["predict", "v2_infer", "v2_version_infer", "feedback", "promote_model", "reconcile_incoming"],
)
def test_the_functions_that_hand_work_to_a_pool_take_the_context(declared, name: str) -> None:
    parameters = list(inspect.signature(declared[name].get_user_function()).parameters)
    assert parameters[-1] == "context"


class SlowSession:
    """The served model's session, taking `seconds` a run: a model that hangs for a while."""

    def __init__(self, session, seconds: float) -> None:
        self.session, self.seconds = session, seconds

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, *args, **kwargs):
        time.sleep(self.seconds)
        return self.session.run(*args, **kwargs)


def test_health_and_models_answer_while_an_inference_hangs() -> None:
    """Before, a small body ran on the event loop: a model that hung froze /api/health too."""
    services = Services(read_settings=no_settings, pools=Pools(inference_threads=1))
    model = services.provider.current()
    services.provider.holder.swap(
        dataclasses.replace(model, session=SlowSession(model.session, SLOW_INFERENCE_SECONDS))
    )
    app = func.FunctionApp()
    app.register_functions(api_blueprint(services))
    functions = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
    one_image = http_request("POST", "predict", {"pixels": [0] * 784})

    async def scenario() -> tuple[list[float], list[int], float]:
        started = time.monotonic()
        # Two: one runs in the only inference thread, the other waits for it.
        predictions = [
            asyncio.create_task(functions["predict"](one_image, runtime_context()))
            for _ in range(2)
        ]
        await asyncio.sleep(0.2)
        waits, statuses = [], []
        for name in ("health", "models", "health"):
            asked = time.monotonic()
            statuses.append((await functions[name](http_request("GET", name))).status_code)
            waits.append(time.monotonic() - asked)
        assert not any(p.done() for p in predictions)  # still hanging
        answers = await asyncio.gather(*predictions)
        assert [a.status_code for a in answers] == [200, 200]
        return waits, statuses, time.monotonic() - started

    waits, statuses, predicted_in = asyncio.run(scenario())
    assert statuses == [200, 200, 200]
    assert max(waits) < 0.5, waits
    assert predicted_in >= 2 * SLOW_INFERENCE_SECONDS  # one thread: one inference at a time


def test_a_cold_start_for_health_waits_in_the_inference_pool() -> None:
    services = Services(read_settings=no_settings, pools=Pools(inference_threads=1))
    seen = []
    current = services.provider.current

    def load() -> object:
        seen.append(threading.current_thread().name)
        return current()

    services.provider.current = load
    assert asyncio.run(handlers.health(http_request("GET", "health"), services)).status_code == 200
    assert seen == ["inference-pool_0"]  # neither the loop nor the loop's default executor
