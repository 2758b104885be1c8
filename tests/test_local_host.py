"""The local Functions host: routing, request/response translation, errors, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from local_host import build_web_app, startup_listing
from local_host.settings import load_local_settings, read_route_prefix, worker_process_count
from tests.helpers import read_lines, wait_for_line

REPO_ROOT = Path(__file__).resolve().parent.parent
SLOW_HANDLER_SECONDS = 0.2

test_app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
items = func.Blueprint()


@test_app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "method": req.method,
        "url": req.url,
        "is_http_request": isinstance(req, func.HttpRequest),
        "body": req.get_body().decode(),
        "params": dict(req.params),
        "x_trace": req.headers.get("X-Trace"),
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


@items.route(route="items/{id}", methods=[func.HttpMethod.GET], trigger_arg_name="request")
def get_item(request: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"item {request.route_params['id']}")


@items.route(route="items/{id}", methods=["DELETE"], trigger_arg_name="request")
def delete_item(request: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=204)


@test_app.route(route="pages/{number}", methods=["GET"])
def page(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")


@test_app.route(route="created", methods=["PUT"])
def created(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse(b"\x00\x01", status_code=201, mimetype="application/octet-stream")
    response.headers.add_header("Set-Cookie", "a=1")
    response.headers.add_header("Set-Cookie", "b=2")
    return response


@test_app.route(route="plain", methods=["GET"])
def plain(req: func.HttpRequest) -> str:
    return "just a string"


@test_app.route(route="anything")
def anything(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.method)


@test_app.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(SLOW_HANDLER_SECONDS)
    return func.HttpResponse("done")


@test_app.route(route="async", methods=["GET"])
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(f"async {req.params['who']}")


@test_app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret-internal-detail")


@test_app.route(route="wrong-type", methods=["GET"])
def wrong_type(req: func.HttpRequest) -> dict[str, str]:
    return {"not": "a response"}


@test_app.blob_trigger(arg_name="blob", path="models/{name}", connection="MODELS_STORAGE")
def on_model_blob(blob: func.InputStream) -> None:
    raise AssertionError("blob-triggered functions must not be called over HTTP")


test_app.register_functions(items)


def with_client(
    scenario: Callable[[TestClient], Awaitable[Any]], web_app: web.Application | None = None
) -> Any:
    """Run ``scenario`` against the test app behind a real local socket."""

    async def run() -> Any:
        async with TestClient(TestServer(web_app or build_web_app(test_app))) as client:
            return await scenario(client)

    return asyncio.run(run())


def problem(response_body: str) -> dict[str, Any]:
    return json.loads(response_body)


# --- routing -----------------------------------------------------------------------------


def test_serves_routes_under_the_api_prefix_with_their_methods() -> None:
    async def scenario(client: TestClient) -> list[tuple[int, str]]:
        calls = [
            client.post("/api/echo", data=b"hello"),
            client.get("/api/items/7"),
            client.delete("/api/items/7"),
            client.patch("/api/anything"),
            client.post("/echo", data=b"hello"),  # no prefix: not served
        ]
        return [(r.status, await r.text()) for r in [await call for call in calls]]

    echo_result, got, deleted, patched, unprefixed = with_client(scenario)
    assert echo_result[0] == 200
    assert json.loads(echo_result[1])["body"] == "hello"
    assert got == (200, "item 7")
    assert deleted == (204, "")
    assert patched == (200, "PATCH")
    assert unprefixed[0] == 404


def test_route_prefix_can_be_changed_or_emptied() -> None:
    async def scenario(client: TestClient) -> tuple[int, int]:
        return (await client.get("/items/3")).status, (await client.get("/api/items/3")).status

    assert with_client(scenario, build_web_app(test_app, route_prefix="")) == (200, 404)


def test_route_query_and_header_values_reach_the_function() -> None:
    async def scenario(client: TestClient) -> dict[str, Any]:
        response = await client.post(
            "/api/echo?digit=7&tag=a&tag=b", data=b"x", headers={"X-Trace": "abc"}
        )
        return await response.json()

    payload = with_client(scenario)
    assert payload["method"] == "POST"
    assert payload["params"] == {"digit": "7", "tag": "a,b"}
    assert payload["x_trace"] == "abc"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/echo\?digit=7&tag=a&tag=b", payload["url"])
    assert payload["is_http_request"] is True


def test_plain_route_parameters_reach_the_function() -> None:
    async def scenario(client: TestClient) -> list[tuple[int, str]]:
        responses = [await client.get(f"/api/pages{suffix}") for suffix in ("/12", "")]
        return [(r.status, await r.text()) for r in responses]

    with_number, without_number = with_client(scenario)
    assert with_number == (200, '{"number": "12"}')
    assert without_number[0] == 404


@pytest.mark.parametrize(
    "template", ["items/{id:int}", "items/{id?}", "files/{*path}", "a/{b=1}", "a/{name}.{ext?}"]
)
def test_route_templates_beyond_literal_and_plain_parameters_are_refused(template: str) -> None:
    refused = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @refused.route(route=template, methods=["GET"])
    def fancy(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("never")

    with pytest.raises(ValueError, match=rf"fancy: route '{re.escape(template)}'"):
        build_web_app(refused)


def test_literal_routes_win_over_parameters() -> None:
    specific_first = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @specific_first.route(route="models/{name}", methods=["GET"])
    def any_model(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("any")

    @specific_first.route(route="models/latest", methods=["GET"])
    def latest_model(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("latest")

    async def scenario(client: TestClient) -> list[str]:
        return [await (await client.get(f"/api/models/{n}")).text() for n in ("3", "latest")]

    assert with_client(scenario, build_web_app(specific_first)) == ["any", "latest"]


def test_functions_needing_more_than_the_request_are_refused_at_startup() -> None:
    mismatched = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @mismatched.route(route="mismatch", methods=["GET"])
    def takes_request_under_another_name(request: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("never")

    with_input = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @with_input.route(route="model", methods=["GET"])
    @with_input.blob_input(arg_name="model", path="models/current", connection="MODELS_STORAGE")
    def read_model(req: func.HttpRequest, model: bytes) -> func.HttpResponse:
        return func.HttpResponse(model)

    with pytest.raises(ValueError, match=r"takes \['request'\].*'req'"):
        build_web_app(mismatched)
    with pytest.raises(ValueError, match=r"does not supply model \(blob\)"):
        build_web_app(with_input)


def test_two_functions_claiming_the_same_route_and_method_are_refused() -> None:
    clashing = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @clashing.route(route="same", methods=["GET"])
    def first(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("first")

    @clashing.route(route="same", methods=["GET", "POST"])
    def second(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("second")

    with pytest.raises(ValueError, match="'first' and 'second'"):
        build_web_app(clashing)


# --- responses and concurrency -------------------------------------------------------------


def test_function_response_status_headers_and_body_are_kept() -> None:
    async def scenario(client: TestClient) -> tuple[int, str, list[str], bytes, str]:
        response = await client.put("/api/created")
        text_response = await client.get("/api/plain")
        return (
            response.status,
            response.headers["Content-Type"],
            response.headers.getall("Set-Cookie"),
            await response.read(),
            f"{text_response.headers['Content-Type']}|{await text_response.text()}",
        )

    status, content_type, cookies, body, text = with_client(scenario)
    assert status == 201
    assert content_type == "application/octet-stream"
    assert cookies == ["a=1", "b=2"]
    assert body == b"\x00\x01"
    assert text == "text/plain; charset=utf-8|just a string"


def test_async_functions_are_awaited() -> None:
    async def scenario(client: TestClient) -> tuple[int, str]:
        response = await client.get("/api/async?who=me")
        return response.status, await response.text()

    assert with_client(scenario) == (200, "async me")


def test_sync_functions_run_off_the_event_loop() -> None:
    concurrent_requests = 20

    async def scenario(client: TestClient) -> tuple[list[int], float]:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.get("/api/slow") for _ in range(concurrent_requests))
        )
        return [r.status for r in responses], time.perf_counter() - started

    statuses, elapsed = with_client(scenario)
    assert statuses == [200] * concurrent_requests
    # One at a time would take 20 * 0.2 s = 4 s; a thread pool of even 6 takes about 0.8 s.
    assert elapsed < concurrent_requests * SLOW_HANDLER_SECONDS / 2


# --- errors --------------------------------------------------------------------------------


def test_wrong_method_is_405_with_allow_header() -> None:
    async def scenario(client: TestClient) -> tuple[int, str, str, str]:
        response = await client.post("/api/items/7")
        return (
            response.status,
            response.headers["Allow"],
            response.headers["Content-Type"],
            await response.text(),
        )

    status, allow, content_type, body = with_client(scenario)
    assert status == 405
    assert set(allow.split(",")) == {"DELETE", "GET"}
    assert content_type == "application/problem+json"
    assert problem(body) == {
        "type": "about:blank",
        "title": "Method Not Allowed",
        "status": 405,
        "detail": "POST is not allowed here; use DELETE, GET.",
    }


def test_unknown_path_is_404_problem() -> None:
    async def scenario(client: TestClient) -> tuple[int, str, str]:
        response = await client.get("/api/no-such-function")
        return response.status, response.headers["Content-Type"], await response.text()

    status, content_type, body = with_client(scenario)
    assert status == 404
    assert content_type == "application/problem+json"
    assert problem(body)["title"] == "Not Found"
    assert problem(body)["detail"] == "No function is served at this path."


@pytest.mark.parametrize("route", ["boom", "wrong-type"])
def test_failing_function_is_500_problem_without_traceback(
    route: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: TestClient) -> tuple[int, str, str]:
        response = await client.get(f"/api/{route}")
        return response.status, response.headers["Content-Type"], await response.text()

    with caplog.at_level(logging.ERROR, logger="local_host"):
        status, content_type, body = with_client(scenario)
    assert status == 500
    assert content_type == "application/problem+json"
    assert problem(body)["title"] == "Internal Server Error"
    assert "Traceback" not in body
    assert "secret-internal-detail" not in body
    assert "Function" in problem(body)["detail"]
    # The traceback is in the host's log instead.
    assert any(record.exc_info for record in caplog.records)


def test_request_body_over_the_limit_is_413_problem() -> None:
    async def scenario(client: TestClient) -> tuple[int, dict[str, Any], int]:
        too_big = await client.post("/api/echo", data=b"x" * 2048)
        fits = await client.post("/api/echo", data=b"x" * 1024)
        return too_big.status, problem(await too_big.text()), fits.status

    status, body, fitting_status = with_client(
        scenario, build_web_app(test_app, max_body_bytes=1024)
    )
    assert status == 413
    assert body["status"] == 413
    assert "1024" in body["detail"]
    assert fitting_status == 200


def test_each_request_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(client: TestClient) -> None:
        await client.get("/api/items/9")
        await client.get("/api/missing")

    with caplog.at_level(logging.INFO, logger="local_host"):
        with_client(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "local_host.guards"]
    assert len(lines) == 2
    assert re.fullmatch(r"GET /api/items/9 200 \d+\.\d ms", lines[0])
    assert re.fullmatch(r"GET /api/missing 404 \d+\.\d ms", lines[1])


# --- non-HTTP triggers ---------------------------------------------------------------------


def test_non_http_function_is_listed_but_not_routed() -> None:
    web_app = build_web_app(test_app)

    async def scenario(client: TestClient) -> int:
        return (await client.post("/api/on_model_blob", data=b"")).status

    assert with_client(scenario, web_app) == 404
    listing = startup_listing(web_app, "http://localhost:7071")
    assert "    echo: [POST] http://localhost:7071/api/echo" in listing.splitlines()
    assert "    anything: [*] http://localhost:7071/api/anything" in listing.splitlines()
    assert "    page: [GET] http://localhost:7071/api/pages/{number}" in listing.splitlines()
    assert (
        "    on_model_blob: blobTrigger (LogsAndContainerScan) is not served locally; "
        "only source=func.BlobSource.EVENT_GRID is"
    ) in listing.splitlines()


def test_a_trigger_kind_without_an_adapter_is_listed_as_not_served() -> None:
    queued = func.FunctionApp()

    @queued.queue_trigger(arg_name="message", queue_name="work", connection="MODELS_STORAGE")
    def on_message(message: func.QueueMessage) -> None:
        raise AssertionError("never called")

    listing = startup_listing(build_web_app(queued), "http://localhost:7071")
    assert "not served by the local host: on_message (queueTrigger)" in listing.splitlines()


# --- configuration files -------------------------------------------------------------------


def test_local_settings_fill_the_environment_without_overriding(tmp_path: Path) -> None:
    (tmp_path / "local.settings.example.json").write_text(
        json.dumps({"Values": {"FROM_EXAMPLE": "yes"}})
    )
    environ = {"ALREADY_SET": "from shell"}
    assert load_local_settings(tmp_path, environ) == tmp_path / "local.settings.example.json"
    assert environ == {"ALREADY_SET": "from shell", "FROM_EXAMPLE": "yes"}

    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"ALREADY_SET": "from file", "REFRESH_SECONDS": 10}})
    )
    environ = {"ALREADY_SET": "from shell"}
    assert load_local_settings(tmp_path, environ) == tmp_path / "local.settings.json"
    assert environ == {"ALREADY_SET": "from shell", "REFRESH_SECONDS": "10"}


def test_no_settings_file_leaves_the_environment_alone(tmp_path: Path) -> None:
    environ = {"KEEP": "1"}
    assert load_local_settings(tmp_path, environ) is None
    assert environ == {"KEEP": "1"}


def test_route_prefix_comes_from_host_json(tmp_path: Path) -> None:
    assert read_route_prefix(tmp_path) == "api"
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    assert read_route_prefix(tmp_path) == "api"
    (tmp_path / "host.json").write_text(
        json.dumps({"extensions": {"http": {"routePrefix": "/v1/"}}})
    )
    assert read_route_prefix(tmp_path) == "v1"
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"http": {"routePrefix": ""}}}))
    assert read_route_prefix(tmp_path) == ""


# --- the command line, as a real process ---------------------------------------------------


def start_local_host(
    app: str = "tests.local_host_test_app", **settings: str
) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """``python -m local_host`` on a free port, with its stdout lines fed into a queue."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "local_host", "--app", app),
            *("--host", "127.0.0.1", "--port", "0"),
        ],
        cwd=REPO_ROOT,
        # An app setting, read as the Functions host reads it.
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "1000",
            **settings,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, read_lines(process)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_command_line_serves_over_http_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    process, lines = start_local_host()
    try:
        url = wait_for_line(lines, r"ping: \[GET\] (http://\S+)").group(1)
        wait_for_line(lines, r"on_model_blob: blobTrigger \(LogsAndContainerScan\) is not served")
        with urllib.request.urlopen(f"{url}?name=test", timeout=10) as response:
            assert (response.status, response.read()) == (200, b"pong test")
        with pytest.raises(urllib.error.HTTPError) as not_found:
            urllib.request.urlopen(url.replace("/ping", "/nope"), timeout=10)
        assert not_found.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as too_large:
            urllib.request.urlopen(
                urllib.request.Request(url, data=b"x" * 1001, method="GET"), timeout=10
            )
        assert too_large.value.code == 413
        assert "1000" in json.loads(too_large.value.read())["detail"]
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    assert "GET /api/ping 200" in stderr
    assert "Traceback" not in stderr


def answering_pids(url: str, requests: int) -> set[int]:
    """The processes that answered ``requests`` GETs, each on a new connection."""
    pids = set()
    for _ in range(requests):
        with urllib.request.urlopen(url, timeout=10) as response:
            pids.add(int(response.read()))
    return pids


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by whatever adopted it, maybe never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.1)
    return False


def test_worker_process_count_serves_the_port_from_that_many_processes() -> None:
    process, lines = start_local_host(FUNCTIONS_WORKER_PROCESS_COUNT="2")
    try:
        url = wait_for_line(lines, r"pid: \[GET\] (http://\S+)").group(1)
        # The kernel spreads new connections over the listeners: 40 all on one is 2**-39.
        pids = answering_pids(url, 40)
        assert len(pids) == 2
        assert process.pid in pids
        (extra,) = pids - {process.pid}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert wait_until_gone(extra)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in process.stderr.read()


def pids_of_open_connections(url: str, connections: int) -> list[int]:
    """The process serving each of ``connections`` connections opened at once and kept open
    (as a load test's clients do), by a GET on each once all are open."""
    parts = urllib.parse.urlsplit(url)

    async def open_all() -> list[int]:
        streams = await asyncio.gather(
            *(asyncio.open_connection(parts.hostname, parts.port) for _ in range(connections))
        )
        await asyncio.sleep(0.5)  # every connection accepted somewhere
        pids = []
        for reader, writer in streams:
            writer.write(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE).group(1))
            pids.append(int(await reader.readexactly(length)))
        for _, writer in streams:
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.5)  # the processes see them closed
        return pids

    return asyncio.run(asyncio.wait_for(open_all(), timeout=30))


def test_connections_opened_at_once_are_shared_evenly_between_the_processes() -> None:
    process, lines = start_local_host(FUNCTIONS_WORKER_PROCESS_COUNT="2")
    try:
        url = wait_for_line(lines, r"pid: \[GET\] (http://\S+)").group(1)
        answering_pids(url, 40)  # both processes listening
        time.sleep(0.5)  # and those connections closed on their side too
        for _ in range(3):  # accepting on one socket by chance, 8 could land 8 to 0
            pids = pids_of_open_connections(url, 8)
            assert sorted(pids.count(pid) for pid in set(pids)) == [4, 4]
    finally:
        process.kill()


def test_the_first_process_keeps_taking_connections_when_an_extra_one_dies() -> None:
    process, lines = start_local_host(FUNCTIONS_WORKER_PROCESS_COUNT="2")
    try:
        url = wait_for_line(lines, r"pid: \[GET\] (http://\S+)").group(1)
        (extra,) = answering_pids(url, 40) - {process.pid}
        os.kill(extra, signal.SIGKILL)
        assert wait_until_gone(extra)
        time.sleep(0.5)  # the first process sees it gone
        # Nothing waits for the dead one's turn: each new connection is answered, by the first.
        assert set(pids_of_open_connections(url, 4)) == {process.pid}
        assert answering_pids(url, 10) == {process.pid}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert f"Extra process {extra} exited" in process.stderr.read()


def test_only_the_first_process_runs_the_timers() -> None:
    process, lines = start_local_host(
        "tests.local_host_timer_pid_app", FUNCTIONS_WORKER_PROCESS_COUNT="2"
    )
    try:
        seen = []  # the timer's line and the listing come in either order
        deadline = time.monotonic() + 60
        while not all(any(line.startswith(start) for line in seen) for start in ("timer", "pid:")):
            seen.append(lines.get(timeout=max(deadline - time.monotonic(), 0.1)).strip())
        url = next(line.split()[-1] for line in seen if line.startswith("pid:"))
        assert len(answering_pids(url, 40)) == 2  # the extra process is up, and did not run it
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(0.5)  # the reader thread takes what is left of the output
    timer_lines = [line for line in seen + list(lines.queue) if "timer ran in" in line]
    assert timer_lines == [f"timer ran in {process.pid}"]


def test_an_extra_process_stops_when_the_first_is_killed() -> None:
    process, lines = start_local_host(FUNCTIONS_WORKER_PROCESS_COUNT="2")
    try:
        url = wait_for_line(lines, r"pid: \[GET\] (http://\S+)").group(1)
        (extra,) = answering_pids(url, 40) - {process.pid}
        process.kill()
        process.wait(timeout=10)
        assert wait_until_gone(extra)
    finally:
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(NameError, ProcessLookupError):
            os.kill(extra, signal.SIGKILL)  # never an orphan holding the port


@pytest.mark.parametrize("value", ["0", "11", "two", "-1"])
def test_worker_process_count_outside_one_to_ten_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=f"FUNCTIONS_WORKER_PROCESS_COUNT.*{value!r}"):
        worker_process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": value})
    assert worker_process_count({}) == 1
    assert worker_process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": "10"}) == 10


def test_a_function_asking_for_its_context_gets_one_per_invocation() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="whoami", methods=["GET"])
    def whoami(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return func.HttpResponse(
            f"{context.function_name} {context.invocation_id} {context.invocation_id}"
        )

    async def scenario(client: TestClient) -> list[str]:
        return [await (await client.get("/api/whoami")).text() for _ in range(2)]

    first, second = (answer.split() for answer in with_client(scenario, build_web_app(app)))
    assert first[0] == second[0] == "whoami"
    assert first[1] != second[1]
    assert first[1] == first[2]  # the same id every time it is read
    assert str(uuid.UUID(first[1])) == first[1]


def test_a_function_asking_for_other_arguments_is_refused_at_start_up() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="odd", methods=["GET"])
    def odd(req: func.HttpRequest, extra: str) -> func.HttpResponse:
        return func.HttpResponse()

    with pytest.raises(ValueError, match=r"odd: takes \['req', 'extra'\]"):
        build_web_app(app)


def test_an_extra_process_that_fails_to_start_stops_the_host_with_a_message() -> None:
    process, _ = start_local_host(
        "tests.local_host_extra_fails_app", FUNCTIONS_WORKER_PROCESS_COUNT="2"
    )
    try:
        status = process.wait(timeout=45)  # not the 60 s a process is given to listen
    finally:
        if process.poll() is None:
            process.kill()
    assert status == 1
    stderr = process.stderr.read()
    assert "local host: an extra serving process exited with status 1 before it listened" in stderr
