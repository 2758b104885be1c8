"""A short load run of POST /api/feedback through the local host into Azurite: many clients send
distinct corrections (and some again), then the container is read back to show that every
accepted item is stored once, whole, and nothing else is; then one client goes over its
allowance to show the rate limit, and one client writes a fresh X-Forwarded-For address into
every post for `--spoof-seconds` to show what that gains it (docs/benchmarks.md, Feedback).
Exits 1 when an item is lost, or when the spoofing client gets more than its allowance.

    .venv/bin/python -m benchmarks.feedback_load --json build/feedback_load.json

A client is the address its connection comes from (the local host appends it to X-Forwarded-For,
as Azure's front end does): each client here connects from an address of its own in 127.0.0.0/8,
which Linux routes to the loopback interface as a whole. The load run is about storage, not the
instance's caps: its stack takes FEEDBACK_PER_INSTANCE_PER_MINUTE=60000.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import aiohttp
import numpy as np
from azure.storage.blob import ContainerClient

from benchmarks.mnist_digits import MNIST
from benchmarks.soak_stack import start_stack, stop_stack
from functions.feedback.item import blob_name, item_from_stored, item_id
from functions.pools import STORAGE_MAX_WAITING, STORAGE_THREADS
from functions.settings import DEFAULT_FEEDBACK_CONTAINER

PER_MINUTE = 10  # the default FEEDBACK_PER_MINUTE
LOAD_INSTANCE_PER_MINUTE = 60_000  # the load run's stack: the caps are not what it measures


def client_source(group: int, index: int) -> str:
    """The loopback address client `index` of a group connects from."""
    return f"127.{group}.{index // 250}.{index % 250 + 1}"


def corrections(count: int, start: int = 0) -> list[dict]:
    """`count` distinct MNIST test digits from `start`, each "corrected" from a wrong digit to
    its label."""
    return list(each_correction(count, start, "test"))


def each_correction(count: int | None = None, start: int = 0, part: str = "test") -> Iterator[dict]:
    """As `corrections`, from MNIST's `part`, one at a time: made as they are sent."""
    with np.load(MNIST) as data:
        end = None if count is None else start + count
        images, labels = data[f"x_{part}"][start:end], data[f"y_{part}"][start:end]
    for image, label in zip(images, labels, strict=True):
        yield {
            "pixels": image.tolist(),
            "predicted": (int(label) + 1) % 10,
            "label": int(label),
            "model_version": "mnist-cnn-1.2.0",
        }


async def send_all(
    url: str,
    jobs: Iterable[tuple[str, dict]],
    connections: int,
    forwarded: Callable[[int], str] | None = None,
    seconds: float | None = None,
) -> list[dict]:
    """Each (client's source address, correction) POSTed once, `connections` at a time; with
    `forwarded`, job n claims to come from forwarded(n) in X-Forwarded-For; with `seconds`, no
    job is started after that long."""
    results: list[dict] = []
    pending = enumerate(jobs)  # shared by the workers: each takes the next job
    sessions: dict[str, aiohttp.ClientSession] = {}
    deadline = time.perf_counter() + seconds if seconds is not None else None

    def session_of(source: str) -> aiohttp.ClientSession:
        if source not in sessions:
            connector = aiohttp.TCPConnector(limit=connections, local_addr=(source, 0))
            sessions[source] = aiohttp.ClientSession(connector=connector)
        return sessions[source]

    async def worker() -> None:
        for number, (source, body) in pending:
            headers = {"X-Forwarded-For": forwarded(number)} if forwarded else {}
            started = time.perf_counter()
            async with session_of(source).post(url, json=body, headers=headers) as response:
                answer = await response.json(content_type=None)
                results.append(
                    {
                        "status": response.status,
                        "ms": (time.perf_counter() - started) * 1e3,
                        "item": answer.get("item"),
                        "retry_after": response.headers.get("Retry-After"),
                        "expected": item_id(
                            np.array(body["pixels"], dtype=np.uint8), body["label"]
                        ),
                    }
                )
            if deadline is not None and time.perf_counter() >= deadline:
                return

    try:
        await asyncio.gather(*(worker() for _ in range(connections)))
    finally:
        for session in sessions.values():
            await session.close()
    return results


def stored_items(container: ContainerClient) -> dict[str, dict]:
    return {
        blob.name: json.loads(container.download_blob(blob.name).readall())
        for blob in container.list_blobs()
    }


def load_run(url: str, container: ContainerClient, clients: int, connections: int) -> dict:
    """`clients` addresses, each sending its allowance of distinct items, and a fifth of them
    sent again (a retry after a lost answer): every one accepted, each item stored once."""
    items = corrections(clients * PER_MINUTE)
    jobs = [(client_source(1, index % clients), item) for index, item in enumerate(items)]
    started = time.perf_counter()
    results = asyncio.run(send_all(url, jobs, connections))
    seconds = time.perf_counter() - started
    # Resent from other addresses: within anyone's allowance, so only storage can say no.
    again = [(client_source(2, index), item) for index, item in enumerate(items[::5])]
    repeated = asyncio.run(send_all(url, again, connections))

    stored = stored_items(container)
    expected = {result["expected"] for result in results}
    accepted = [r for r in results + repeated if r["status"] == 202]
    whole = sum(
        item_from_stored(document).id == name.removeprefix("items/").removesuffix(".json")
        for name, document in stored.items()
    )
    latencies = np.array([r["ms"] for r in results])
    return {
        "clients": clients,
        "connections": connections,
        "sent": len(results),
        "resent": len(repeated),
        "accepted": len(accepted),
        "refused": len(results) + len(repeated) - len(accepted),
        "ids_answered_right": sum(r["item"] == r["expected"] for r in accepted),
        "stored": len(stored),
        "stored_whole_and_named_by_content": whole,
        "lost": len({blob_name(i) for i in expected} - set(stored)),
        "unexpected": len(set(stored) - {blob_name(i) for i in expected}),
        "seconds": seconds,
        "items_per_s": len(results) / seconds,
        "p50_ms": float(np.median(latencies)),
        "p99_ms": float(np.percentile(latencies, 99)),
    }


def rate_limit_run(url: str, burst: int, start: int) -> dict:
    """One client sends `burst` distinct items at once, then, after the Retry-After it was
    given, one more."""
    items = corrections(burst + 1, start)  # none of the load run's digits
    client = client_source(3, 77)
    results = asyncio.run(send_all(url, [(client, item) for item in items[:burst]], 4))
    retry_after = max(int(r["retry_after"]) for r in results if r["status"] == 429)
    time.sleep(retry_after)
    after = asyncio.run(send_all(url, [(client, items[burst])], 1))[0]
    return {
        "sent_at_once": burst,
        "accepted": sum(r["status"] == 202 for r in results),
        "refused_429": sum(r["status"] == 429 for r in results),
        "other": sum(r["status"] not in {202, 429} for r in results),
        "retry_after_s": sorted({int(r["retry_after"]) for r in results if r["retry_after"]}),
        "after_waiting_retry_after": after["status"],
    }


def spoofed_run(url: str, seconds: float, connections: int) -> dict:
    """One client, one source address, a fresh X-Forwarded-For address in every post (MNIST
    training digits, over again when all 60,000 were sent: none of the other runs' items), as
    fast as it can for `seconds`."""
    client = client_source(4, 1)
    started = time.perf_counter()
    results = asyncio.run(
        send_all(
            url,
            ((client, item) for _ in itertools.count() for item in each_correction(part="train")),
            connections,
            forwarded=lambda n: f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
            seconds=seconds,
        )
    )
    elapsed = time.perf_counter() - started
    accepted = sum(r["status"] == 202 for r in results)
    return {
        "seconds": elapsed,
        "sent": len(results),
        "accepted": accepted,
        "refused_429": sum(r["status"] == 429 for r in results),
        "other": sum(r["status"] not in {202, 429} for r in results),
        "accepted_per_minute": accepted * 60 / elapsed,
        "allowance": PER_MINUTE + PER_MINUTE * elapsed / 60,  # the burst, then the refill
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    # As many at once as an instance's storage pool takes (writing and waiting); past that it
    # answers 503 at once, by design (functions/pools.py).
    parser.add_argument("--connections", type=int, default=STORAGE_THREADS + STORAGE_MAX_WAITING)
    parser.add_argument("--spoof-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ["FEEDBACK_PER_MINUTE"] = str(PER_MINUTE)
    os.environ["FEEDBACK_PER_INSTANCE_PER_MINUTE"] = str(LOAD_INSTANCE_PER_MINUTE)
    with tempfile.TemporaryDirectory() as scratch:
        stack = start_stack(Path(scratch) / "logs", Path(scratch) / "azurite", 10.0)
        try:
            url = stack.api + "/feedback"
            container = ContainerClient.from_connection_string(
                stack.connection_string, DEFAULT_FEEDBACK_CONTAINER
            )
            figures = {
                "load": load_run(url, container, args.clients, args.connections),
                "rate_limit": rate_limit_run(url, 3 * PER_MINUTE, args.clients * PER_MINUTE),
                "spoofed": spoofed_run(url, args.spoof_seconds, args.connections),
            }
        finally:
            stop_stack(stack)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    load, spoofed = figures["load"], figures["spoofed"]
    accepted = load["sent"] + load["resent"]
    if (
        spoofed["accepted"] > spoofed["allowance"] + 1
        or load["lost"]
        or load["unexpected"]
        or load["refused"]
        or load["ids_answered_right"] != accepted
        or load["stored_whole_and_named_by_content"] != load["stored"]
    ):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
