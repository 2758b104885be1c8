"""A short load run of POST /api/feedback through the local host into Azurite: many clients send
distinct corrections (and some again), then the container is read back to show that every
accepted item is stored once, whole, and nothing else is; then one client goes over its
allowance to show the rate limit (docs/benchmarks.md, Feedback). Exits 1 when an item is lost.

    .venv/bin/python -m benchmarks.feedback_load --json build/feedback_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from azure.storage.blob import ContainerClient

from benchmarks.serving import ROOT
from benchmarks.soak_stack import start_stack, stop_stack
from functions.feedback.item import blob_name, item_from_stored, item_id
from functions.settings import DEFAULT_FEEDBACK_CONTAINER

PER_MINUTE = 10  # the default FEEDBACK_PER_MINUTE


def corrections(count: int, start: int = 0) -> list[dict]:
    """`count` distinct MNIST test digits from `start`, each "corrected" from a wrong digit to
    its label."""
    with np.load(ROOT.parent / "shared" / "data" / "mnist.npz") as data:
        images = data["x_test"][start : start + count]
        labels = data["y_test"][start : start + count]
    return [
        {
            "pixels": image.tolist(),
            "predicted": (int(label) + 1) % 10,
            "label": int(label),
            "model_version": "mnist-cnn-1.2.0",
        }
        for image, label in zip(images, labels, strict=True)
    ]


async def send_all(url: str, jobs: list[tuple[str, dict]], connections: int) -> list[dict]:
    """Each (client address, correction) POSTed once, `connections` at a time."""
    results: list[dict] = []
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            client, body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(
                url, json=body, headers={"X-Forwarded-For": client}
            ) as response:
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

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
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
    addresses = [f"198.51.100.{index}" for index in range(clients)]
    jobs = [(addresses[index % clients], item) for index, item in enumerate(items)]
    started = time.perf_counter()
    results = asyncio.run(send_all(url, jobs, connections))
    seconds = time.perf_counter() - started
    # Resent from fresh addresses: within anyone's allowance, so only storage can say no.
    again = [(f"203.0.113.{index % 250}", item) for index, item in enumerate(items[::5])]
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
    client = "192.0.2.77"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ["FEEDBACK_PER_MINUTE"] = str(PER_MINUTE)
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
            }
        finally:
            stop_stack(stack)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    load = figures["load"]
    accepted = load["sent"] + load["resent"]
    if (
        load["lost"]
        or load["unexpected"]
        or load["refused"]
        or load["ids_answered_right"] != accepted
        or load["stored_whole_and_named_by_content"] != load["stored"]
    ):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
