"""Azurite's blob service (the storage emulator, from node_modules) as a child process of the
stack, started again whenever it exits, and stopped with it: by `stop`, and on Linux by the
kernel too when the stack dies without stopping it (kill -9, a crash), so that no Azurite is ever
left running unsupervised. An Azurite (or anything else) already listening on the port is used
as it is, and the log says so, naming the process where it can."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob.aio import BlobServiceClient

from local_host.settings import APP_ROOT

logger = logging.getLogger(__name__)

AZURITE_BINARY = APP_ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_HOST = "127.0.0.1"
# Azurite's fixed development account; the key is public and documented.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# Pauses before starting an exited Azurite again double up to the last, and start short again
# after an Azurite that stayed up a minute.
RESTART_PAUSES = (1.0, 60.0)
# What Azurite gets when the stack dies: on SIGTERM it stops listening at once and saves what it
# holds before it exits.
DEATH_SIGNAL = signal.SIGTERM


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{AZURITE_HOST}:{port}/{AZURITE_ACCOUNT};"
    )


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def listener(port: int) -> str | None:
    """Linux, best effort: "pid N (command line)" of the process that listens on TCP `port`;
    None when it cannot be told (another OS, another user's process)."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                listening = fields[3] == "0A"  # TCP_LISTEN
                if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    sockets.add(f"socket:[{fields[9]}]")
    for process in Path("/proc").iterdir() if sockets else ():
        if not process.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in sockets for fd in (process / "fd").iterdir()):
                command = (process / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                return f"pid {process.name} ({command.decode(errors='replace')})"
    return None


def azurite_command() -> list[str]:
    """Node itself, running Azurite's script, so that the process the stack starts is Azurite's
    own; on Linux through util-linux's `setpriv --pdeathsig`, which has the kernel send it
    DEATH_SIGNAL when the thread that started it (the stack's event loop) ends, however the stack
    ends, kill -9 included (kept across the exec of node; a `preexec_fn` doing the same is unsafe
    in a process with threads). Elsewhere a stack killed outright leaves Azurite running, and the
    next stack says it found one."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on the PATH: Azurite needs Node.js (make setup installs it)")
    azurite = [node, str(AZURITE_BINARY.resolve())]  # .bin/azurite-blob links to its main.js
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", DEATH_SIGNAL.name[3:], "--", *azurite] if setpriv else azurite


async def create_containers(connection_string: str, containers: list[str]) -> bool:
    """Create the containers the app expects; False (with a warning) if storage is not there."""
    try:  # storage that is not there should not hold anything up for the SDK's 15 s retries
        async with BlobServiceClient.from_connection_string(
            connection_string, retry_total=0, connection_timeout=3
        ) as service:
            for container in containers:
                with contextlib.suppress(ResourceExistsError):
                    await service.create_container(container)
    except (AzureError, ValueError) as error:
        logger.warning("Storage is not reachable (%s); serving without it", error)
        return False
    return True


class Azurite:
    """Azurite's blob service as a child process, started again whenever it exits."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port, self.data_dir = port, data_dir
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> bool:
        """Start it and wait until it listens; False when something already listens there."""
        if is_listening(AZURITE_HOST, self.port):
            found = await asyncio.to_thread(listener, self.port)
            logger.warning(
                "%s:%d is taken already%s: the stack uses it as its Azurite, UNSUPERVISED: "
                "this stack did not start it, does not start it again if it exits, and does not "
                "stop it. Stop it to have the stack run an Azurite of its own.",
                *(AZURITE_HOST, self.port, f", by {found}" if found else ""),
            )
            return False
        if not AZURITE_BINARY.exists():
            raise SystemExit(f"{AZURITE_BINARY} is missing: run `npm ci` (make setup installs it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            *azurite_command(),
            *(
                "--blobHost",
                AZURITE_HOST,
                "--blobPort",
                str(self.port),
                "--location",
                str(self.data_dir),
            ),
            *("--disableTelemetry", "--skipApiVersionCheck", "--silent"),
            start_new_session=True,  # Ctrl-C reaches this process only, which stops it in order
        )
        for _ in range(600):
            if await asyncio.to_thread(is_listening, AZURITE_HOST, self.port):
                logger.info("Azurite started (pid %d) on port %d", self.process.pid, self.port)
                return True
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.2)
        raise SystemExit(f"Azurite did not listen on {AZURITE_HOST}:{self.port}")

    async def keep_running(self, containers: list[str]) -> None:
        """Start it again each time it exits, with a growing pause, until cancelled."""
        pause, loop = RESTART_PAUSES[0], asyncio.get_running_loop()
        while self.process is not None:
            started_at = loop.time()
            status = await self.process.wait()
            pause = RESTART_PAUSES[0] if loop.time() - started_at > 60 else pause
            logger.warning(
                "Azurite exited with status %s; the app keeps serving without storage. "
                "Starting Azurite again in %.0f s",
                status,
                pause,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_PAUSES[1])
            try:
                if not await self.start():
                    return  # another Azurite took the port: use it
            except (
                Exception,
                SystemExit,
            ):  # keep trying: storage coming back is worth it
                logger.exception("Azurite did not start again")
                continue
            # A killed Azurite may lose what it had not saved, containers included.
            if await create_containers(azurite_connection_string(self.port), containers):
                logger.info("Azurite is back, with the app's containers")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
