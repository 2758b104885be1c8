"""The local Functions host: routing, request/response translation through the runtime, errors,
configuration, the CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from local_host.__main__ import main
from local_host.server import host_app, startup_listing
from local_host.settings import load_local_settings, read_route_prefix
from local_host.worker import SCRIPT_MODULE, WorkerFailed
from tests.helpers import read_lines, wait_for_line
from tests.stack import REPO_ROOT

HTTP_APP = REPO_ROOT / "tests" / "apps" / "http_app"
SLOW_HANDLER_SECONDS = 0.2  # as in the app


@pytest.fixture(autouse=True)
def _each_test_restores_imports(restored_imports: None) -> None:
    """Each test here hosts an app (tests/conftest.py puts the repository's own back)."""


def app_folder(folder: Path, functions: str) -> Path:
    """A function app in ``folder`` whose ``function_app.py`` declares ``functions``."""
    header = (
        "import azure.functions as func\n\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
    )
    (folder / "function_app.py").write_text(header + textwrap.dedent(functions))
    return folder


def with_client(
    scenario: Callable[[TestClient], Awaitable[Any]], folder: Path = HTTP_APP, **options: Any
) -> Any:
    """Run ``scenario`` against the app in ``folder``, hosted behind a real local socket."""

    async def run() -> Any:
        async with TestClient(TestServer(await host_app(folder, **options))) as client:
            return await scenario(client)

    return asyncio.run(run())


def hosted(folder: Path, **options: Any) -> web.Application:
    return asyncio.run(host_app(folder, **options))


def the_app_module() -> ModuleType:
    """The app the host indexed last, as the runtime imported it."""
    return sys.modules[SCRIPT_MODULE]


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

    assert with_client(scenario, route_prefix="") == (200, 404)
    assert with_client(scenario, route_prefix="/items/") == (404, 404)


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
def test_route_templates_beyond_literal_and_plain_parameters_are_refused(
    template: str, tmp_path: Path
) -> None:
    folder = app_folder(
        tmp_path,
        f"""
        @app.route(route={template!r}, methods=["GET"])
        def fancy(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("never")
        """,
    )
    with pytest.raises(ValueError, match=rf"fancy: route '{re.escape(template)}'"):
        hosted(folder)


def test_literal_routes_win_over_parameters() -> None:
    async def scenario(client: TestClient) -> list[str]:
        return [await (await client.get(f"/api/models/{n}")).text() for n in ("3", "latest")]

    # any_model (models/{name}) is declared before latest_model (models/latest).
    assert with_client(scenario) == ["any", "latest"]


@pytest.mark.parametrize(
    ("first_methods", "second_methods", "clash"),
    [
        pytest.param(["GET"], ["GET", "POST"], "GET", id="GET, then GET and POST"),
        pytest.param(["GET"], None, r"\*", id="GET, then every method"),
        pytest.param(None, ["POST"], "POST", id="every method, then POST"),
    ],
)
@pytest.mark.parametrize("between", [False, True], ids=["adjacent", "apart"])
def test_two_functions_claiming_the_same_route_and_method_are_refused(
    first_methods: list[str] | None,
    second_methods: list[str] | None,
    clash: str,
    between: bool,
    tmp_path: Path,
) -> None:
    functions = [
        f"""
        @app.route(route="same", methods={first_methods!r})
        def first(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("first")
        """,
        """
        @app.route(route="other", methods=["GET"])
        def other(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("other")
        """,
        f"""
        @app.route(route="same", methods={second_methods!r})
        def second(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("second")
        """,
    ]
    if not between:
        del functions[1]
    folder = app_folder(tmp_path, "".join(textwrap.dedent(f) for f in functions))
    with pytest.raises(ValueError, match=rf"second: {clash} /api/same is served by first"):
        hosted(folder)


def test_functions_on_one_path_with_other_methods_share_it(tmp_path: Path) -> None:
    folder = app_folder(
        tmp_path,
        """
        @app.route(route="same", methods=["GET"])
        def first(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("first")

        @app.route(route="other", methods=["GET"])
        def other(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("other")

        @app.route(route="same", methods=["POST"])
        def second(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("second")
        """,
    )

    async def scenario(client: TestClient) -> list[tuple[int, str]]:
        responses = [await client.request(m, "/api/same") for m in ("GET", "POST", "PUT")]
        return [(r.status, r.headers.get("Allow") or await r.text()) for r in responses]

    get, post, put = with_client(scenario, folder)
    assert get == (200, "first")
    assert post == (200, "second")
    assert put[0] == 405
    assert set(put[1].split(",")) == {"GET", "POST"}


# --- what the runtime checks itself --------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "parameter"),
    [
        ("request: func.HttpRequest", "request"),  # the binding is named req
        ("req: func.HttpRequest, extra: str", "extra"),
    ],
)
def test_functions_taking_parameters_without_a_binding_are_refused_at_startup(
    signature: str, parameter: str, tmp_path: Path
) -> None:
    folder = app_folder(
        tmp_path,
        f"""
        @app.route(route="odd", methods=["GET"])
        def odd({signature}) -> func.HttpResponse:
            return func.HttpResponse("never")
        """,
    )
    with pytest.raises(WorkerFailed, match=rf"cannot load the odd function: .*'{parameter}'"):
        hosted(folder)


def test_a_function_with_an_input_binding_fails_when_called(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The local host hands a function its trigger only: the runtime calls it without the
    blob, which fails as any function does (in Azure, the host reads the blob first)."""
    folder = app_folder(
        tmp_path,
        """
        @app.route(route="model", methods=["GET"])
        @app.blob_input(arg_name="model", path="models/current", connection="MODELS_STORAGE")
        def read_model(req: func.HttpRequest, model: bytes) -> func.HttpResponse:
            return func.HttpResponse(model)
        """,
    )

    async def scenario(client: TestClient) -> tuple[int, str]:
        response = await client.get("/api/model")
        return response.status, await response.text()

    with caplog.at_level(logging.ERROR, logger="local_host"):
        status, body = with_client(scenario, folder)
    assert status == 500
    assert problem(body)["detail"] == "Function 'read_model' failed; see the local host's log."
    assert "missing 1 required positional argument: 'model'" in caplog.text


# --- responses and concurrency -------------------------------------------------------------


def test_function_response_status_headers_and_body_are_kept() -> None:
    async def scenario(client: TestClient) -> tuple[int, dict[str, str], list[str], bytes, str]:
        response = await client.put("/api/created")
        text_response = await client.get("/api/plain")
        return (
            response.status,
            dict(response.headers),
            response.headers.getall("Set-Cookie"),
            await response.read(),
            f"{text_response.headers['Content-Type']}|{await text_response.text()}",
        )

    status, headers, cookies, body, text = with_client(scenario)
    assert status == 201
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["X-Custom"] == "kept"
    # Each Set-Cookie travels as one of the runtime's cookies, its attributes with it.
    assert cookies == [
        "a=1",
        "session=abc; max-age=60; path=/api; secure; samesite=strict; httponly",
    ]
    assert body == b"\x00\x01"
    assert text == "text/plain; charset=utf-8|just a string"


def test_async_functions_are_awaited_on_the_loop_and_plain_ones_run_in_threads() -> None:
    async def scenario(client: TestClient) -> tuple[str, int, int]:
        hello = await (await client.get("/api/async?who=me")).text()
        on_async = int(await (await client.get("/api/thread/async")).text())
        on_plain = int(await (await client.get("/api/thread/plain")).text())
        return hello, on_async, on_plain

    hello, on_async, on_plain = with_client(scenario)
    assert hello == "async me"
    # The test server runs on this thread's loop, and the async function ran on it.
    assert on_async == threading.get_ident()
    assert on_plain != threading.get_ident()


def test_a_blocked_plain_function_does_not_hold_up_the_others() -> None:
    async def scenario(client: TestClient) -> tuple[list[tuple[int, str]], bool, tuple[int, str]]:
        release = the_app_module().RELEASE_BLOCKED
        release.clear()
        blocked = asyncio.create_task(client.get("/api/blocked"))
        others = [await client.get(path) for path in ("/api/async?who=me", "/api/plain")]
        answers = [(r.status, await r.text()) for r in others]
        still_blocked = not blocked.done()
        release.set()
        response = await blocked
        return answers, still_blocked, (response.status, await response.text())

    answers, still_blocked, blocked = with_client(scenario)
    assert answers == [(200, "async me"), (200, "just a string")]
    assert still_blocked
    assert blocked == (200, "released")


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


def test_a_function_asking_for_its_context_gets_one_per_invocation() -> None:
    async def scenario(client: TestClient) -> list[str]:
        return [await (await client.get("/api/whoami")).text() for _ in range(2)]

    first, second = (answer.split() for answer in with_client(scenario))
    assert first[0] == second[0] == "whoami"
    assert first[1] != second[1]
    assert first[1] == first[2]  # the same id every time it is read
    assert str(uuid.UUID(first[1])) == first[1]


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


@pytest.mark.parametrize(
    ("route", "logged"),
    [
        ("boom", "RuntimeError: secret-internal-detail"),
        ("wrong-type", 'unsupported type "http" for Python type "dict"'),
    ],
)
def test_failing_function_is_500_problem_without_traceback(
    route: str, logged: str, caplog: pytest.LogCaptureFixture
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
    assert problem(body)["detail"].startswith("Function ")
    # The error and its traceback are in the host's log instead.
    [failure] = [r.getMessage() for r in caplog.records if r.name == "local_host.worker"]
    assert failure.startswith("Executed 'Functions.")
    assert logged in failure
    assert "Traceback (most recent call last)" in failure


def test_request_body_over_the_limit_is_413_problem() -> None:
    async def scenario(client: TestClient) -> tuple[int, dict[str, Any], int]:
        too_big = await client.post("/api/echo", data=b"x" * 2048)
        fits = await client.post("/api/echo", data=b"x" * 1024)
        return too_big.status, problem(await too_big.text()), fits.status

    status, body, fitting_status = with_client(scenario, max_body_bytes=1024)
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
    invocations = [r.getMessage() for r in caplog.records if r.name == "local_host.worker"]
    assert [line.split(" (")[0] for line in invocations] == [
        "Executing 'Functions.get_item'",
        "Executed 'Functions.get_item'",
    ]


# --- the start-up listing ------------------------------------------------------------------


def test_functions_are_listed_and_other_triggers_listed_as_not_served() -> None:
    web_app = hosted(HTTP_APP)

    async def scenario(client: TestClient) -> int:
        return (await client.post("/api/on_message", data=b"")).status

    assert with_client(scenario) == 404
    listing = startup_listing(web_app, "http://localhost:7071").splitlines()
    assert listing[0] == "Functions:"
    assert "    echo: [POST] http://localhost:7071/api/echo" in listing
    assert "    anything: [*] http://localhost:7071/api/anything" in listing
    assert "    page: [GET] http://localhost:7071/api/pages/{number}" in listing
    assert "    on_message: queueTrigger, not served locally" in listing


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


# --- the command line ----------------------------------------------------------------------


def served_copy(folder: Path) -> Path:
    """A copy of the HTTP test app with the files of an app folder in Azure: host.json (the
    prefix v1) and local.settings.json (a body limit the shell overrides, and a setting)."""
    shutil.copy(HTTP_APP / "function_app.py", folder / "function_app.py")
    (folder / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}}})
    )
    values = {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "10", "TEST_GREETING": "from the file"}
    (folder / "local.settings.json").write_text(json.dumps({"Values": values}))
    return folder


def start_local_host(app_dir: Path) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """``python -m local_host`` on a free port, with its stdout lines fed into a queue."""
    # An app setting from the shell, which wins over local.settings.json's.
    environment = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "1000",
    }
    environment.pop("TEST_GREETING", None)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "local_host", "--app-dir", str(app_dir)),
            *("--host", "127.0.0.1", "--port", "0"),
        ],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, read_lines(process)


def fetch(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_command_line_serves_over_http_and_stops_cleanly(
    stop_signal: signal.Signals, tmp_path: Path
) -> None:
    process, lines = start_local_host(served_copy(tmp_path))
    try:
        url = wait_for_line(lines, r"ping: \[GET\] (http://\S+)").group(1)
        wait_for_line(lines, r"on_message: queueTrigger, not served locally")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/ping", url)
        assert fetch(f"{url}?name=test") == (200, b"pong test")
        assert fetch(url.replace("/ping", "/settings/TEST_GREETING")) == (200, b"from the file")
        assert fetch(url.replace("/ping", "/nope"))[0] == 404
        status, body = fetch(url, data=b"x" * 1001)
        assert status == 413
        assert "1000" in json.loads(body)["detail"]
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    assert "GET /v1/ping 200" in stderr
    assert "Executed 'Functions.ping' (Succeeded" in stderr
    assert "Traceback" not in stderr


def test_command_line_stops_with_a_message_for_an_app_the_runtime_cannot_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_folder(tmp_path, "raise RuntimeError('the app cannot start')\n")
    monkeypatch.setattr("local_host.__main__.configure_logging", lambda: None)  # pytest's stays
    with pytest.raises(SystemExit, match=r"local host: indexing the app failed: .*cannot start"):
        main(["--app-dir", str(tmp_path), "--port", "0"])
