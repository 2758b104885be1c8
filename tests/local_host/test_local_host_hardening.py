"""The local host against hostile or broken clients, over real sockets: HEAD, requests it
cannot parse, slow and oversized bodies, too many connections, encoded bodies, CORS."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from local_host.guards import CappedSite, ListenerLimits
from local_host.server import host_app
from local_host.settings import host_cors_origins, request_body_limit
from tests.stack import REPO_ROOT

# Generous: the tests share a loaded 2-core machine.
ANSWER_TIMEOUT_SECONDS = 20.0

# Its functions: status (GET, HEAD), upload (POST), and on_event, an Event Grid trigger, only
# there so that the app has a control route: the Event Grid webhook.
HARDENING_APP = REPO_ROOT / "tests" / "apps" / "hardening_app"
WEBHOOK = "/runtime/webhooks/eventgrid?functionName=on_event"


@pytest.fixture(autouse=True)
def _each_test_restores_imports(restored_imports: None) -> None:
    """Each test here hosts an app (tests/conftest.py puts the repository's own back)."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/problem+json"
        document = json.loads(self.body)
        assert document["status"] == self.status
        return document


async def read_answer(reader: asyncio.StreamReader, *, head: bool = False) -> Answer:
    """One HTTP/1.1 response with a Content-Length (none of the body for a HEAD)."""
    async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
        status_line, *header_lines = (
            (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
        )
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        return Answer(int(status_line.split()[1]), headers, await reader.readexactly(length))


async def wait_until_closed_by_server(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection; TimeoutError if it keeps it open."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
            while await reader.read(65536):
                pass  # whatever else arrives is not under test
    except ConnectionResetError:
        pass  # closed with our data unread: closed all the same
    return time.monotonic() - started


def serve_and_run(
    scenario: Callable[[int], Awaitable[Any]],
    *,
    limits: ListenerLimits | None = None,
    **host_options: Any,
) -> Any:
    """Run ``scenario(port)`` against the hardening app behind the host's real listener, as
    ``local_host.server.serve`` runs it."""

    async def run() -> Any:
        listener_limits = limits or ListenerLimits()
        web_app = await host_app(HARDENING_APP, **host_options)
        runner = web.AppRunner(web_app, **listener_limits.handler_options())
        await runner.setup()
        try:
            await CappedSite(runner, "127.0.0.1", 0, listener_limits).start()
            return await scenario(runner.addresses[0][1])
        finally:
            await runner.cleanup()

    return asyncio.run(run())


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- HEAD --------------------------------------------------------------------------------


def test_head_answers_like_get_without_a_body() -> None:
    async def scenario(port: int) -> tuple[Answer, Answer, Answer]:
        reader, writer = await connect(port)
        # Pipelined: if any body followed the HEAD answer, the next answer would not parse.
        writer.write(request_bytes("HEAD", "/api/status", {}))
        writer.write(request_bytes("GET", "/api/status", {}))
        writer.write(request_bytes("HEAD", "/api/upload", {}))
        answers = (
            await read_answer(reader, head=True),
            await read_answer(reader),
            await read_answer(reader, head=True),
        )
        writer.close()
        return answers

    head, get, head_of_post_only = serve_and_run(scenario)
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-type"] == "application/json"
    assert get.status == 200
    assert json.loads(get.body) == {"method": "GET"}
    # The function saw HEAD, so its answer has the same length as GET's (a different value).
    assert int(head.headers["content-length"]) == len(get.body) + 1
    assert head_of_post_only.status == 405


# --- requests the host cannot parse --------------------------------------------------------

SECRET = b"SECRET-" * 200


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT-HTTP " + SECRET + b"\r\n\r\n",
        b"GET /api/status HTTP/1.1\r\nHost: x\r\nBad Header " + SECRET + b"\r\n\r\n",
        b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Long: " + SECRET * 10 + b"\r\n\r\n",
        # HTTP/1.0 without a length: the body is read as the next request line.
        b"POST /api/upload HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" + SECRET,
    ],
    ids=["bad request line", "bad header", "header too long", "HTTP/1.0 POST without length"],
)
def test_requests_that_do_not_parse_get_problem_json_without_echo(raw: bytes) -> None:
    async def scenario(port: int) -> bytes:
        reader, writer = await connect(port)
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
            everything = await reader.read(-1)
        writer.close()
        return everything

    everything = serve_and_run(scenario)
    assert b"SECRET" not in everything
    answers = asyncio.run(answers_in(everything))
    assert answers[-1].status == 400
    assert answers[-1].problem()["title"] == "Bad Request"


async def answers_in(data: bytes) -> list[Answer]:
    """The HTTP answers, one after another, in what a connection received."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    answers = []
    while not reader.at_eof():
        answers.append(await read_answer(reader))
    return answers


# --- body size and time ----------------------------------------------------------------------


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent() -> None:
    async def scenario(port: int) -> Answer:
        reader, writer = await connect(port)
        # Only the headers are sent: the answer must come without the 1 GB.
        writer.write(request_bytes("POST", "/api/upload", {"Content-Length": "1000000000"}))
        answer = await read_answer(reader)
        await wait_until_closed_by_server(reader)
        return answer

    answer = serve_and_run(scenario, max_body_bytes=1024)
    assert answer.status == 413
    assert "1024" in answer.problem()["detail"]


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit() -> None:
    async def scenario(port: int) -> tuple[Answer, int]:
        reader, writer = await connect(port)
        writer.write(request_bytes("POST", "/api/upload", {"Transfer-Encoding": "chunked"}))
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
        sent = 0
        answer_task = asyncio.create_task(read_answer(reader))
        # Keep sending (up to 64 MiB) until the host answers.
        while not answer_task.done() and sent < 64 * 1024 * 1024:
            try:
                writer.write(chunk * 64)
                await writer.drain()
            except ConnectionError:
                break
            sent += 64 * 1024
            await asyncio.sleep(0)
        answer = await answer_task
        await wait_until_closed_by_server(reader)
        return answer, sent

    answer, sent = serve_and_run(scenario, max_body_bytes=256 * 1024)
    assert answer.status == 413
    # "Content Too Large" (RFC 9110) from Python 3.13 on, "Request Entity Too Large" before.
    assert answer.problem()["title"] == HTTPStatus.REQUEST_ENTITY_TOO_LARGE.phrase
    assert sent < 64 * 1024 * 1024  # answered long before the client gave up


def test_a_chunked_body_over_the_limit_that_came_whole_is_refused_too() -> None:
    async def scenario(port: int) -> list[Answer]:
        answers = []
        for size in (2048, 1024):  # over the limit, then at it
            reader, writer = await connect(port)
            chunked = f"{size:x}\r\n".encode() + b"x" * size + b"\r\n0\r\n\r\n"
            # One write, headers and the whole body together: it is all there when read.
            writer.write(
                request_bytes("POST", "/api/upload", {"Transfer-Encoding": "chunked"}) + chunked
            )
            answers.append(await read_answer(reader))
            writer.close()
        return answers

    too_large, fitting = serve_and_run(scenario, max_body_bytes=1024)
    assert too_large.status == 413
    assert "1024" in too_large.problem()["detail"]  # the most this host reads
    assert fitting.status == 200
    assert json.loads(fitting.body)["length"] == 1024


def test_a_body_that_never_finishes_is_408_and_the_connection_closed() -> None:
    async def scenario(port: int) -> tuple[Answer, float]:
        reader, writer = await connect(port)
        started = time.monotonic()
        writer.write(request_bytes("POST", "/api/upload", {"Content-Length": "100"}, b"x" * 10))
        answer = await read_answer(reader)
        waited = time.monotonic() - started
        await wait_until_closed_by_server(reader)
        return answer, waited

    answer, waited = serve_and_run(scenario, body_timeout_seconds=1.0)
    assert answer.status == 408
    assert "1 s" in answer.problem()["detail"]
    assert waited >= 1.0


def test_encoded_bodies_are_passed_on_as_sent() -> None:
    # Inflating would turn this 100 KB into 100 MB inside the host's event loop.
    bomb = gzip.compress(b"\0" * (100 * 1024 * 1024))

    async def scenario(port: int) -> Answer:
        reader, writer = await connect(port)
        headers = {"Content-Length": str(len(bomb)), "Content-Encoding": "gzip"}
        writer.write(request_bytes("POST", "/api/upload", headers, bomb))
        answer = await read_answer(reader)
        writer.close()
        return answer

    answer = serve_and_run(scenario, max_body_bytes=1024 * 1024)
    assert answer.status == 200
    assert json.loads(answer.body) == {"length": len(bomb), "encoding": "gzip"}


def test_the_body_limit_is_the_functions_app_setting() -> None:
    assert request_body_limit({}) == 104_857_600
    assert request_body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "9437184"}) == 9_437_184
    with pytest.raises(ValueError, match="FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"):
        request_body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "9 MB"})


# --- connections ---------------------------------------------------------------------------


def test_headers_dribbled_too_slowly_get_the_connection_closed() -> None:
    async def scenario(port: int) -> tuple[float, Answer]:
        reader, writer = await connect(port)
        started = time.monotonic()
        writer.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")

        async def dribble() -> None:
            for number in range(200):
                writer.write(f"X-Slow-{number}: 1\r\n".encode())
                await asyncio.sleep(0.2)

        dribbling = asyncio.create_task(dribble())
        await wait_until_closed_by_server(reader)
        waited = time.monotonic() - started
        dribbling.cancel()
        # Others are served as before.
        reader, writer = await connect(port)
        writer.write(request_bytes("GET", "/api/status", {}))
        return waited, await read_answer(reader)

    waited, answer = serve_and_run(scenario, limits=ListenerLimits(header_timeout_seconds=1.0))
    assert 1.0 <= waited < ANSWER_TIMEOUT_SECONDS
    assert answer.status == 200


def test_connections_over_the_cap_are_answered_503_until_one_closes() -> None:
    cap = 4

    async def scenario(port: int) -> tuple[list[Answer], Answer, Answer]:
        held = [await connect(port) for _ in range(cap)]
        # Those within the cap are served, and stay open (keep-alive).
        within = []
        for reader, writer in held:
            writer.write(request_bytes("GET", "/api/status", {}))
            within.append(await read_answer(reader))
        reader, writer = await connect(port)
        writer.write(request_bytes("GET", "/api/status", {}))
        over = await read_answer(reader)
        held[0][1].close()
        # Once one closes, a new connection is served again.
        async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
            while True:
                reader, writer = await connect(port)
                writer.write(request_bytes("GET", "/api/status", {}))
                after = await read_answer(reader)
                writer.close()
                if after.status != 503:
                    break
                await asyncio.sleep(0.2)
        for _, writer in held[1:]:
            writer.close()
        return within, over, after

    within, over, after = serve_and_run(scenario, limits=ListenerLimits(max_connections=cap))
    assert [answer.status for answer in within] == [200] * cap
    assert over.status == 503
    assert over.headers["retry-after"] == "1"
    assert over.problem()["title"] == "Service Unavailable"
    assert after.status == 200


# --- CORS and control calls -----------------------------------------------------------------


def test_host_cors_comes_from_the_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Host": {"CORS": "http://a.test, http://b.test/"}}))
    assert host_cors_origins(settings) == ["http://a.test", "http://b.test/"]
    settings.write_text(json.dumps({"Values": {}}))
    assert host_cors_origins(settings) == []
    assert host_cors_origins(None) == []
    example = REPO_ROOT / "local.settings.example.json"
    assert host_cors_origins(example) == ["*"]


def preflight(path: str, origin: str) -> bytes:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    return request_bytes("OPTIONS", path, headers)


def test_any_origin_gets_preflight_and_cors_headers_on_the_functions_only() -> None:
    async def scenario(port: int) -> list[Answer]:
        reader, writer = await connect(port)
        answers = []
        for raw in (
            preflight("/api/upload", "http://page.test"),
            request_bytes("GET", "/api/status", {"Origin": "http://page.test"}),
            request_bytes("GET", "/api/missing", {"Origin": "http://page.test"}),
            request_bytes("GET", "/api/status", {}),
            preflight(WEBHOOK, "http://page.test"),
        ):
            writer.write(raw)
            answers.append(await read_answer(reader))
        writer.close()
        return answers

    allowed, simple, error, same_origin, control = serve_and_run(scenario, cors_origins=["*"])
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == "*"
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert allowed.headers["access-control-allow-headers"] == "content-type"
    assert (simple.status, simple.headers["access-control-allow-origin"]) == (200, "*")
    assert (error.status, error.headers["access-control-allow-origin"]) == (404, "*")
    assert "access-control-allow-origin" not in same_origin.headers
    # The control routes never take part in CORS, so a page cannot be allowed to call them.
    assert control.status == 405
    assert "access-control-allow-origin" not in control.headers


def test_only_listed_origins_are_allowed() -> None:
    async def scenario(port: int) -> list[Answer]:
        reader, writer = await connect(port)
        answers = []
        for raw in (
            preflight("/api/upload", "http://listed.test"),
            preflight("/api/upload", "http://other.test"),
            request_bytes("GET", "/api/status", {"Origin": "http://listed.test"}),
            request_bytes("GET", "/api/status", {"Origin": "http://other.test"}),
        ):
            writer.write(raw)
            answers.append(await read_answer(reader))
        writer.close()
        return answers

    listed, other, listed_get, other_get = serve_and_run(
        scenario, cors_origins=["http://listed.test/"]
    )
    assert listed.status == 204
    assert listed.headers["access-control-allow-origin"] == "http://listed.test"
    assert listed.headers["vary"] == "Origin"
    assert other.status == 204
    assert "access-control-allow-origin" not in other.headers
    assert listed_get.headers["access-control-allow-origin"] == "http://listed.test"
    assert "access-control-allow-origin" not in other_get.headers


def test_without_host_cors_a_preflight_reaches_the_function() -> None:
    async def scenario(port: int) -> Answer:
        reader, writer = await connect(port)
        writer.write(preflight("/api/upload", "http://page.test"))
        answer = await read_answer(reader)
        writer.close()
        return answer

    answer = serve_and_run(scenario)
    assert answer.status == 405
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
    ],
)
def test_control_calls_are_taken_only_as_json(content_type: str, status: int) -> None:
    async def scenario(port: int) -> Answer:
        reader, writer = await connect(port)
        event = {
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "code"},
        }
        body = json.dumps([event]).encode()
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            "aeg-event-type": "SubscriptionValidation",
        }
        writer.write(request_bytes("POST", WEBHOOK, headers, body))
        answer = await read_answer(reader)
        writer.close()
        return answer

    answer = serve_and_run(scenario)
    assert answer.status == status
    if status == 415:
        assert "application/json" in answer.problem()["detail"]
    else:
        assert json.loads(answer.body) == {"validationResponse": "code"}
