"""Over HTTP: the local host against a lean FastAPI + uvicorn server (benchmarks/lean_server.py)
on the same model, with the same number of processes on both sides (1 and 2), at 1, 8 and 32
closed-loop clients (benchmarks/http_load.py, in its own process). The two servers take turns
round by round, so load from elsewhere weighs on both alike; medians of the rounds. Beside
requests/s and p99: each server's CPU time per request, and with two processes how evenly they
shared it.

    python -m benchmarks.http_comparison [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.serving import digits, free_port
from local_host.dev import azurite_connection_string

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = (1, 8, 32)
PROCESSES = (1, 2)
CLOSED_PORT = 9  # discard: nothing listens there


def server_command(server: str, port: int, processes: int) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that start ``server`` with ``processes`` processes."""
    if server == "local host":
        command = [sys.executable, "-m", "local_host", "--no-site", "--host", "127.0.0.1"]
        # Storage on a closed port: both serve the bundled model, even where an Azurite with a
        # promoted model runs (the blob trigger needs a connection to start at all).
        settings = {
            "FUNCTIONS_WORKER_PROCESS_COUNT": str(processes),
            "MODELS_STORAGE": azurite_connection_string(CLOSED_PORT),
        }
    else:
        command = [sys.executable, "-m", "benchmarks.lean_server", "--workers", str(processes)]
        settings = {}
    return [*command, "--port", str(port)], {**os.environ, **settings}


@dataclass(frozen=True)
class Running:
    url: str  # the predict URL
    process: subprocess.Popen

    def cpu_seconds(self) -> dict[int, float]:
        """User and system time so far of each of the server's processes (Linux: /proc)."""
        return _cpu_seconds(self.process.pid)


def _cpu_seconds(pid: int) -> dict[int, float]:
    task = Path(f"/proc/{pid}/task/{pid}")
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        children = (task / "children").read_text().split()
    except FileNotFoundError:  # gone meanwhile
        return {}
    seconds = {pid: (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")}
    for child in children:
        seconds.update(_cpu_seconds(int(child)))
    return seconds


@contextmanager
def running(server: str, processes: int, body: bytes) -> Iterator[Running]:
    """Start the server; yield it once every process has answered ``body``."""
    port = free_port()
    command, environ = server_command(server, port, processes)
    process = subprocess.Popen(  # noqa: S603
        command, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        if server == "local host":  # it lists its functions once every process listens
            for line in process.stdout:
                if line.startswith(b"Functions:"):
                    break
        wait_until_answering(f"http://127.0.0.1:{port}/api/health", process)
        time.sleep(2 if processes > 1 and server != "local host" else 0)  # uvicorn's workers
        url = f"http://127.0.0.1:{port}/api/predict"
        # Each on a new connection: with two processes, 40 all landing on one is 2**-39, so
        # every process has its model loaded before the rounds.
        for _ in range(40):
            request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - our own http URL
                pass
        yield Running(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_answering(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own http URL
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def measured_load(server: Running, clients: int, seconds: float, images_file: Path) -> dict:
    """``load`` against the server, with the server's CPU time per request it answered (a
    steadier measure than requests/s on a shared machine: it does not depend on how much of
    the CPU the server was given), and the busiest process's share of that time (with two
    processes, 0.5 when they split the work evenly, 1.0 when one did it all)."""
    before = server.cpu_seconds()
    figures = load(server.url, clients, seconds, images_file)
    after = server.cpu_seconds()
    spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    total = sum(spent.values())
    return {
        **figures,
        "cpu_us_per_request": total / max(figures["requests"], 1) * 1e6,
        "busiest_process_share": max(spent.values()) / total if total else 1.0,
    }


def load(url: str, clients: int, seconds: float, images_file: Path) -> dict[str, float]:
    """One closed-loop run of benchmarks.http_load against ``url``."""
    result = subprocess.run(  # noqa: S603
        [
            *(sys.executable, "-m", "benchmarks.http_load", "--url", url),
            *("--clients", str(clients), "--seconds", str(seconds)),
            *("--images", str(images_file)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def written_images(images: np.ndarray, folder: Path) -> tuple[Path, bytes]:
    """The file of pixel lists benchmarks.http_load sends from, and one request body."""
    images_file = folder / "images.json"
    images_file.write_text(json.dumps([image.ravel().tolist() for image in images]))
    return images_file, json.dumps({"pixels": images[0].ravel().tolist()}).encode()


def compare(images: np.ndarray, rounds: int, seconds: float) -> list[dict]:
    """One row per (processes, clients): each server's median requests/s and p99 over rounds."""
    with tempfile.TemporaryDirectory() as folder:
        images_file, body = written_images(images, Path(folder))
        rows = []
        for processes in PROCESSES:
            ours_running, lean_running = (
                running("local host", processes, body),
                running("lean", processes, body),
            )
            with ours_running as ours, lean_running as lean:
                for clients in CLIENTS:
                    runs: dict[str, list[dict]] = {"ours": [], "lean": []}
                    load(ours.url, clients, 1, images_file)  # warm both up
                    load(lean.url, clients, 1, images_file)
                    for _ in range(rounds):
                        runs["ours"].append(measured_load(ours, clients, seconds, images_file))
                        runs["lean"].append(measured_load(lean, clients, seconds, images_file))
                    rows.append(row(processes, clients, runs))
                    print(describe(rows[-1]), flush=True)
    return rows


def row(processes: int, clients: int, runs: dict[str, list[dict]]) -> dict:
    def median(side: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[side])

    figures = {
        side: {
            "requests_per_s": median(side, "requests_per_s"),
            "p50_ms": median(side, "p50_ms"),
            "p99_ms": median(side, "p99_ms"),
            "cpu_us_per_request": median(side, "cpu_us_per_request"),
            "busiest_process_share": median(side, "busiest_process_share"),
            "errors": sum(run["errors"] for run in runs[side]),
        }
        for side in runs
    }
    return {
        "processes": processes,
        "clients": clients,
        **figures,
        "requests_ratio": figures["ours"]["requests_per_s"] / figures["lean"]["requests_per_s"],
        "p99_ratio": figures["ours"]["p99_ms"] / figures["lean"]["p99_ms"],
        "cpu_ratio": figures["ours"]["cpu_us_per_request"] / figures["lean"]["cpu_us_per_request"],
    }


def describe(row: dict) -> str:
    ours, lean = row["ours"], row["lean"]
    return (
        f"   {row['processes']} process(es), {row['clients']:>2} clients: local host "
        f"{ours['requests_per_s']:,.0f} req/s (p99 {ours['p99_ms']:.2f} ms), lean "
        f"{lean['requests_per_s']:,.0f} req/s (p99 {lean['p99_ms']:.2f} ms): "
        f"x{row['requests_ratio']:.2f} requests/s, p99 x{row['p99_ratio']:.2f}; server CPU "
        f"per request {ours['cpu_us_per_request']:.0f} and {lean['cpu_us_per_request']:.0f} us "
        f"(x{row['cpu_ratio']:.2f}); "
        + (
            f"busiest process's share of it {ours['busiest_process_share']:.2f} and "
            f"{lean['busiest_process_share']:.2f}; "
            if row["processes"] > 1
            else ""
        )
        + f"errors {ours['errors']} and {lean['errors']}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_comparison")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    arguments = parser.parse_args(argv)
    rows = compare(digits(64), arguments.rounds, arguments.seconds)
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
