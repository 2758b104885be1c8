"""The app's thread pools (functions/pools.py): each kind of work in threads of its own, so that
slow storage or waiting promotions cannot take the threads predictions need; the storage pool
bounded, refusing at once rather than queueing without end; promotions one at a time, waiting on
the event loop with no thread held."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import uuid
from types import SimpleNamespace

import azure.functions as func
import pytest
from azure_functions_runtime.bindings.context import get_context

from functions.api.blueprint import api_blueprint
from functions.api.problems import STORAGE_RETRY_AFTER
from functions.composition import Services
from functions.pools import (
    STORAGE_MAX_WAITING,
    STORAGE_THREADS,
    OneAtATime,
    Pool,
    Pools,
    shared_pools,
)
from functions.promotion.blueprint import promotion_blueprint
from functions.settings import MissingSetting, inference_threads
from functions.storage.errors import StorageUnavailable
from local_host.rpc import protos
from tests.helpers import picture_of_digit

CLIENT = {"X-Forwarded-For": "192.0.2.1"}


def runtime_context() -> func.Context:
    return get_context(protos.InvocationRequest(invocation_id=str(uuid.uuid4())), "f", ".")


def pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"{name}-pool")]


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


class Gate:
    """Work that blocks until the test opens the gate, counting how many are inside at once."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.inside = self.most_inside = self.done = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, *args) -> str:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.threads.add(threading.current_thread().name)
        self.opened.wait(10)
        with self._lock:
            self.inside -= 1
            self.done += 1
        return threading.current_thread().name


# --- Pool ------------------------------------------------------------------------------------


def test_a_pool_runs_at_most_its_threads_at_once_in_threads_of_its_own() -> None:
    pool, gate = Pool("two", 2), Gate()

    async def scenario() -> list[str]:
        calls = [asyncio.create_task(pool.run(gate)) for _ in range(5)]
        await until(lambda: gate.inside == 2)
        await asyncio.sleep(0.1)
        assert gate.inside == 2
        assert pool.in_flight == 5
        gate.opened.set()
        return await asyncio.gather(*calls)

    names = asyncio.run(scenario())
    assert gate.most_inside == 2
    assert all(name.startswith("two-pool") for name in names)
    assert pool.in_flight == 0


def test_a_bounded_pool_refuses_at_once_when_its_line_is_full() -> None:
    pool, gate = (
        Pool("bounded", 1, max_waiting=2, refuse=lambda: StorageUnavailable("full")),
        Gate(),
    )

    async def scenario() -> float:
        calls = [asyncio.create_task(pool.run(gate)) for _ in range(3)]  # one runs, two wait
        await until(lambda: gate.inside == 1)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="full"):
            await pool.run(gate)
        refused_in = time.monotonic() - started
        # A caller that gives up frees its place in the line.
        calls.pop().cancel()
        await until(lambda: pool.in_flight == 2)
        calls.append(asyncio.create_task(pool.run(gate)))
        await asyncio.sleep(0)
        gate.opened.set()
        await asyncio.gather(*calls)
        await pool.run(gate)  # room again
        return refused_in

    assert asyncio.run(scenario()) < 0.05
    assert gate.done == 4
    assert pool.in_flight == 0


def test_the_callers_context_variables_reach_the_thread() -> None:
    variable = contextvars.ContextVar("variable", default="unset")

    async def scenario() -> str:
        variable.set("the caller's")
        return await Pool("context", 1).run(variable.get)

    assert asyncio.run(scenario()) == "the caller's"


def test_one_at_a_time_waiters_hold_no_thread() -> None:
    one, gate = OneAtATime("turns"), Gate()

    async def scenario() -> None:
        calls = [asyncio.create_task(one.run(gate, n)) for n in range(5)]
        await until(lambda: gate.inside == 1)
        await asyncio.sleep(0.1)
        assert one.waiting == 4  # on the event loop
        assert one.pool.in_flight == 1  # nothing queued in the pool: no thread to wait in
        assert len(pool_threads("turns")) == 1
        gate.opened.set()
        await asyncio.gather(*calls)

    asyncio.run(scenario())
    asyncio.run(one.run(gate))  # another event loop: its own lock, the same one thread
    assert gate.most_inside == 1
    assert gate.done == 6
    assert gate.threads == {"turns-pool_0"}


# --- the pools as the app uses them ------------------------------------------------------------


def test_the_app_shares_one_set_of_pools_per_process() -> None:
    assert Services().pools is Services().pools is shared_pools()
    pools = shared_pools()
    assert pools.inference.threads == inference_threads()
    assert (pools.storage.threads, pools.storage.max_waiting) == (
        STORAGE_THREADS,
        STORAGE_MAX_WAITING,
    )
    assert pools.promotion.pool.threads == 1


def test_the_inference_threads_are_the_cores_unless_set(monkeypatch) -> None:
    import os  # noqa: PLC0415

    monkeypatch.delenv("INFERENCE_THREADS", raising=False)
    assert inference_threads() == os.process_cpu_count()
    monkeypatch.setenv("INFERENCE_THREADS", "")
    assert inference_threads() == os.process_cpu_count()
    monkeypatch.setenv("INFERENCE_THREADS", "3")
    assert inference_threads() == 3
    for wrong in ("0", "many", "1000", "-2"):
        monkeypatch.setenv("INFERENCE_THREADS", wrong)
        with pytest.raises(MissingSetting, match=f"INFERENCE_THREADS='{wrong}' must be a whole"):
            inference_threads()


class HangingStore:
    """A feedback store whose storage hangs until the test lets it answer."""

    def __init__(self) -> None:
        self.gate = Gate()

    def save(self, item) -> str:
        self.gate()
        return item.id


def no_settings():
    raise MissingSetting("MODELS_STORAGE")


class NoLimit:
    def take(self, *_) -> None:
        pass


def declared_functions(services: Services) -> dict:
    app = func.FunctionApp()
    app.register_functions(api_blueprint(services))
    app.register_functions(promotion_blueprint(services))
    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


def request(route: str, body: bytes, content_type: str) -> func.HttpRequest:
    return func.HttpRequest(
        "POST",
        f"http://localhost/api/{route}",
        headers={"Content-Type": content_type, **CLIENT},
        body=body,
    )


def test_hanging_storage_and_a_feedback_flood_leave_pictures_alone(mnist, monkeypatch) -> None:
    """Before, feedback was a plain function in the thread pool that pictures shared: with
    storage slow, pictures waited 10-15 s. Now the writes hold the storage pool's threads only,
    and once its line is full a correction is refused at once."""
    store = HangingStore()
    services = Services(
        read_settings=no_settings,
        feedback_store=store,
        pools=Pools(inference_threads=1, storage_threads=2, storage_max_waiting=2),
    )
    functions = declared_functions(services)
    services.provider.current()  # warm: the bundled model only (no storage settings)
    # The limits on corrections are other tests': every correction here gets through them.
    services.read_settings = SimpleNamespace
    monkeypatch.setattr(
        "functions.api.rate_limit.ClientRateLimit.from_settings", lambda _: NoLimit()
    )
    digit = mnist["x_test"][0]
    correction = (
        b'{"pixels": %s, "predicted": 1, "label": 7, "model_version": "v1"}'
        % str(digit.astype(int).tolist()).encode()
    )
    picture = picture_of_digit(digit)

    async def scenario() -> tuple[list, list[float], list]:
        feedback = functions["feedback"]
        flood = [
            asyncio.create_task(
                feedback(request("feedback", correction, "application/json"), runtime_context())
            )
            for _ in range(4)  # two hanging in the storage threads, two waiting for them
        ]
        await until(lambda: store.gate.inside == 2)
        refused = [
            await feedback(request("feedback", correction, "application/json"), runtime_context())
            for _ in range(3)
        ]
        picture_seconds = []
        for _ in range(3):
            started = time.monotonic()
            answer = await functions["predict"](
                request("predict", picture, "image/png"), runtime_context()
            )
            picture_seconds.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.get_body()
        store.gate.opened.set()
        return refused, picture_seconds, await asyncio.gather(*flood)

    refused, picture_seconds, stored = asyncio.run(scenario())
    assert [r.status_code for r in refused] == [503] * 3
    assert all(r.headers["Retry-After"] == STORAGE_RETRY_AFTER for r in refused)
    assert max(picture_seconds) < 1.0, picture_seconds  # the first decodes with a cold start
    assert [s.status_code for s in stored] == [202] * 4
    assert store.gate.done == 4  # the refused ones never reached storage
    assert store.gate.most_inside == 2


class SlowPromoter:
    """Each decision takes a while, inside the sandbox's one-trial lock, as a trial does."""

    def __init__(self) -> None:
        self.gate = Gate()
        self.handled: list[str] = []

    def handle(self, name: str):
        self.gate()
        self.handled.append(name)

    def reconcile(self) -> list:
        self.gate()
        self.handled.append("(reconciled)")
        return []


def test_promotions_waiting_for_the_trial_hold_no_thread() -> None:
    """Before, each promotion waiting for the one-trial lock held a thread of the runtime's pool:
    five waiting drops, five threads. Now they wait on the event loop."""
    promoter = SlowPromoter()
    services = Services(
        read_settings=lambda: SimpleNamespace(container="models"),
        promoter=promoter,
        pools=Pools(inference_threads=1),  # a promotion pool of this test's own
    )
    functions = declared_functions(services)
    subject = "/blobServices/default/containers/models/blobs/incoming/v{}.onnx"

    def event(n: int) -> func.EventGridEvent:
        return func.EventGridEvent(
            id=str(n),
            data={},
            topic="",
            subject=subject.format(n),
            event_type="Microsoft.Storage.BlobCreated",
            event_time=None,
            data_version="",
        )

    async def scenario() -> None:
        calls = [
            asyncio.create_task(functions["promote_model"](event(n), runtime_context()))
            for n in range(5)
        ]
        calls.append(asyncio.create_task(functions["reconcile_incoming"](None, runtime_context())))
        await until(lambda: promoter.gate.inside == 1)
        await asyncio.sleep(0.1)
        assert services.pools.promotion.waiting == 5
        assert len(pool_threads("promotion")) == 1
        promoter.gate.opened.set()
        await asyncio.gather(*calls)

    threads_before = threading.active_count()
    asyncio.run(scenario())
    assert promoter.gate.most_inside == 1
    assert promoter.handled == [f"v{n}.onnx" for n in range(5)] + ["(reconciled)"]
    assert threading.active_count() - threads_before <= 1  # the one promotion thread
    assert promoter.gate.threads == {"promotion-pool_0"}


def test_a_prediction_is_not_held_up_by_a_promotion(mnist) -> None:
    promoter = SlowPromoter()
    services = Services(
        read_settings=no_settings, promoter=promoter, pools=Pools(inference_threads=1)
    )
    functions = declared_functions(services)
    services.provider.current()  # warm: the bundled model only (no storage settings)
    services.read_settings = lambda: SimpleNamespace(container="models")  # for the promotion
    one_image = request("predict", b'{"pixels": %s}' % str([0] * 784).encode(), "application/json")

    async def scenario() -> float:
        event = func.EventGridEvent(
            id="1",
            data={},
            topic="",
            subject="/blobServices/default/containers/models/blobs/incoming/v1.onnx",
            event_type="Microsoft.Storage.BlobCreated",
            event_time=None,
            data_version="",
        )
        promotion = asyncio.create_task(functions["promote_model"](event, runtime_context()))
        await until(lambda: promoter.gate.inside == 1)
        started = time.monotonic()
        answer = await functions["predict"](one_image, runtime_context())
        assert answer.status_code == 200
        took = time.monotonic() - started
        promoter.gate.opened.set()
        await promotion
        return took

    assert asyncio.run(scenario()) < 0.5
