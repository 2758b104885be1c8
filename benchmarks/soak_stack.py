"""The stack the soak runs against, on free loopback ports, and what it measures of it.

Azurite (blob only, its data in a folder of its own), the local host (`python -m local_host`)
pointed at it, and the Event Grid stand-in that `make run` has (`relay_blob_events` of
local_stack/event_grid.py, here in a process of its own) posting a BlobCreated event for each file
dropped in incoming/ to the host's Event Grid webhook for `promote_model`: the promotion path
`make run` has. Each child runs in a session of its own, so that freezing Azurite or stopping the
host reaches its whole process group (a gate's child processes included) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient

from benchmarks.serving import ROOT, free_port
from functions.serving.repeating import Repeating
from functions.storage.registry import INCOMING
from local_host.event_grid import webhook_url
from local_stack.__main__ import PROMOTION_FUNCTION
from local_stack.azurite import AZURITE_BINARY, azurite_connection_string

CONTAINER = "models"
RELAY_INTERVAL_SECONDS = 0.5
# The Event Grid stand-in: the blobs under argv[2] in MODELS_STORAGE's MODELS_CONTAINER listed
# every argv[3] seconds, each new one's BlobCreated event posted to the webhook argv[1].
RELAY = """
import asyncio, os, sys
from local_stack.event_grid import Subscription, relay_blob_events
from local_host.server import configure_logging
configure_logging()  # as `make run` logs: without the storage SDK's line per request
subscription = Subscription(
    os.environ["MODELS_STORAGE"], os.environ["MODELS_CONTAINER"], sys.argv[2], sys.argv[1]
)
asyncio.run(relay_blob_events(subscription, float(sys.argv[3])))
"""
LOOPBACK = "127.0.0.1"
START_SECONDS = 90  # a cold host imports onnxruntime and warms its model on a loaded box
STOP_SECONDS = 15


class StackError(RuntimeError):
    """A part of the stack did not start; the message says which, and where its log is."""


@dataclass
class Stack:
    """The started children by name, in start order, and how to reach them."""

    log_dir: Path
    connection_string: str = ""
    base_url: str = ""  # http://127.0.0.1:<port>
    port: int = 0
    children: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.base_url + "/api"

    @property
    def host_pid(self) -> int:
        return self.children["host"].pid

    def container(self) -> ContainerClient:
        # Short timeouts and no retries: the soak freezes this very storage on purpose.
        service = BlobServiceClient.from_connection_string(
            self.connection_string, retry_total=0, connection_timeout=5, read_timeout=10
        )
        return service.get_container_client(CONTAINER)

    def freeze_storage(self) -> bool:
        """SIGSTOP to Azurite's group; True once the kernel shows it stopped."""
        azurite = self.children["azurite"]
        _signal_group(azurite, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                # Field 3 of /proc/<pid>/stat is the state; the name before it is in brackets.
                state = Path(f"/proc/{azurite.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state in {"T", "t"}:
                    return True
            time.sleep(0.05)
        return False

    def thaw_storage(self) -> None:
        _signal_group(self.children["azurite"], signal.SIGCONT)

    def alive(self) -> dict[str, bool]:
        return {name: child.poll() is None for name, child in self.children.items()}


def start_stack(log_dir: Path, data_dir: Path, refresh_seconds: float) -> Stack:
    """Azurite, the container, the local host, the Event Grid stand-in; stop_stack undoes it
    (call it even when this raises: whatever started is in `stack.children`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(log_dir)
    if not AZURITE_BINARY.exists():
        raise StackError(f"{AZURITE_BINARY} is missing: `make setup` installs Azurite")
    azurite_port = free_port()
    _start(
        stack,
        "azurite",
        [
            *(str(AZURITE_BINARY), "--blobHost", LOOPBACK, "--blobPort", str(azurite_port)),
            *("--location", str(data_dir), "--disableTelemetry", "--skipApiVersionCheck"),
            "--silent",
        ],
    )
    _wait_listening(stack, "azurite", azurite_port)
    stack.connection_string = azurite_connection_string(azurite_port)
    with (
        BlobServiceClient.from_connection_string(stack.connection_string) as service,
        contextlib.suppress(ResourceExistsError),
    ):
        service.create_container(CONTAINER)

    stack.port = free_port()
    stack.base_url = f"http://{LOOPBACK}:{stack.port}"
    storage = {
        "MODELS_STORAGE": stack.connection_string,
        "AzureWebJobsStorage": stack.connection_string,
        "MODELS_CONTAINER": CONTAINER,
        "MODEL_REFRESH_SECONDS": str(refresh_seconds),
    }
    _start(
        stack,
        "host",
        [sys.executable, "-m", "local_host", "--host", LOOPBACK, "--port", str(stack.port)],
        storage,
    )
    _wait_healthy(stack)
    _start(
        stack,
        "events",
        [
            *(sys.executable, "-c", RELAY, webhook_url(stack.base_url, PROMOTION_FUNCTION)),
            *(INCOMING, str(RELAY_INTERVAL_SECONDS)),
        ],
        storage,
    )
    return stack


def stop_stack(stack: Stack) -> dict[str, int | None]:
    """Thaws storage, then stops each child, the last started first: SIGTERM, then SIGKILL for
    what is left of its process group after STOP_SECONDS. Returns each child's exit status."""
    if "azurite" in stack.children:
        stack.thaw_storage()  # a frozen process cannot act on SIGTERM
    statuses: dict[str, int | None] = {}
    for name, child in reversed(stack.children.items()):
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=STOP_SECONDS)
        # Its own group: a gate's child process left behind by the host goes too.
        _signal_group(child, signal.SIGKILL)
        statuses[name] = child.returncode
    return statuses


def log_tail(stack: Stack, name: str, lines: int = 20) -> str:
    path = stack.log_dir / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _start(stack: Stack, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
    # A file, not a pipe: a full pipe would stall the child.
    with open(stack.log_dir / f"{name}.log", "w") as log:
        stack.children[name] = subprocess.Popen(  # noqa: S603 - our own children
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_listening(stack: Stack, name: str, port: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        _check_running(stack, name)
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
            return
        time.sleep(0.2)
    raise StackError(f"{name} did not listen on port {port} in {START_SECONDS} s")


def _wait_healthy(stack: Stack) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        _check_running(stack, "host")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(stack.api + "/health", timeout=5) as answer,  # noqa: S310
        ):
            if answer.status == 200:
                return
        time.sleep(0.3)
    raise StackError(
        f"the local host was not healthy in {START_SECONDS} s\n{log_tail(stack, 'host')}"
    )


def _check_running(stack: Stack, name: str) -> None:
    if stack.children[name].poll() is not None:
        raise StackError(
            f"{name} exited with status {stack.children[name].returncode} while starting\n"
            + log_tail(stack, name)
        )


def _signal_group(child: subprocess.Popen, number: int) -> None:
    # The group is the child's own (start_new_session); it is gone once all its members are.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, number)


# --- memory -------------------------------------------------------------------------------


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, from /proc (0 once it is gone).
    Pages shared between a parent and a forked child count twice: an upper bound."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        total += _rss_bytes(current)
        pending.extend(_children_of(current))
    return total


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass  # exited between listing and reading
    return 0


def _children_of(pid: int) -> list[int]:
    children: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                children.extend(int(child) for child in (task / "children").read_text().split())
    return children


class MemoryWatch:
    """Samples the host's tree RSS in a thread for the whole run. Past `abort_bytes` it kills
    the host's process group, so a runaway model cannot take the machine down with it."""

    def __init__(self, stack: Stack, abort_bytes: int, interval: float = 0.2) -> None:
        self.stack, self.abort_bytes = stack, abort_bytes
        self.peak = 0  # since the last reset_peak
        self.run_peak = 0
        self.aborted: str | None = None
        self._sampler = Repeating("rss-watch", self._sample, interval)

    def __enter__(self) -> MemoryWatch:
        self._sampler.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._sampler.stop()

    def reset_peak(self) -> None:
        self.peak = 0

    def _sample(self) -> None:
        rss = tree_rss_bytes(self.stack.host_pid)
        self.peak = max(self.peak, rss)
        self.run_peak = max(self.run_peak, rss)
        if rss > self.abort_bytes and self.aborted is None:
            self.aborted = f"host RSS {rss / 1e6:,.0f} MB passed the abort limit; host killed"
            _signal_group(self.stack.children["host"], signal.SIGKILL)
