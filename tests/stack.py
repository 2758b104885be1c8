"""The real parts the tests run against, started on free loopback ports and always stopped:
Azurite (which a test may freeze, as hung storage) and the local host serving the app."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from local_stack.azurite import AZURITE_BINARY, azurite_connection_string
from tests.helpers import wait_for_health

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Azurite:
    process: subprocess.Popen
    port: int

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.port)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Storage that hangs: connections are accepted and never answered."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()


@contextmanager
def running_azurite(location: Path) -> Iterator[Azurite]:
    """A real Azurite blob service keeping its data in `location`."""
    if not AZURITE_BINARY.exists():
        pytest.fail(f"{AZURITE_BINARY} is missing; `make setup` (npm ci) installs Azurite")
    port = free_port()
    process = subprocess.Popen(
        [
            str(AZURITE_BINARY),
            *("--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location)),
            *("--silent", "--disableTelemetry", "--skipApiVersionCheck"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    azurite = Azurite(process, port)
    try:
        _wait_for_port(port, process)
        yield azurite
    finally:
        azurite.thaw()  # a stopped process ignores SIGTERM until it runs again
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def running_local_host(
    environment: dict[str, str], log_path: Path, *arguments: str, stack: Azurite | None = None
) -> Iterator[str]:
    """`python -m local_host` serving the app; yields the API's base URL. With `stack`, the
    whole of `make run` (`python -m local_stack`) on that Azurite: the host and the Event Grid
    stand-in posting the drop zone's events to the promoter. It must stop cleanly (exit status 0)
    on SIGTERM."""
    port = free_port()
    module = "local_host" if stack is None else "local_stack"
    command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)]
    if stack is not None:
        command += ["--azurite-port", str(stack.port)]
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would stall the host
        host = subprocess.Popen(
            [*command, *arguments],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_health(url, host, log_path)
        yield url
    finally:
        host.terminate()
        status = host.wait(timeout=15)
    assert status == 0, log_path.read_text()[-3000:]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"Azurite did not start:\n{process.stdout.read()}")
            time.sleep(0.2)
