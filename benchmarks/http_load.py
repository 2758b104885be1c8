"""A closed-loop HTTP load: N clients POST single-image JSON requests without pause for a fixed
time and print the figures as JSON. Run in its own process, so the client's work does not share
the server's interpreter."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import numpy as np


async def client(session, url, bodies, deadline, timings, errors) -> None:  # noqa: PLR0917
    index = 0
    while time.perf_counter() < deadline:
        body = bodies[index % len(bodies)]
        index += 1
        started = time.perf_counter()
        try:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                answer = await response.read()
                ok = response.status == 200 and b'"prediction"' in answer
        except aiohttp.ClientError:
            ok = False
        timings.append(time.perf_counter() - started)
        if not ok:
            errors.append(1)


async def load(url: str, clients: int, seconds: float, bodies: list[bytes]) -> dict:
    timings: list[float] = []
    errors: list[int] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(client(session, url, bodies, deadline, timings, errors) for _ in range(clients))
        )
        elapsed = time.perf_counter() - started
    latencies = np.array(timings) * 1e3
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(timings),
        "errors": len(errors),
        "requests_per_s": len(timings) / elapsed,
        "p50_ms": float(np.median(latencies)),
        "p99_ms": float(np.percentile(latencies, 99)),
    }


async def wait_until_up(url: str, timeout: float = 30) -> None:
    health = url.rsplit("/", 1)[0] + "/health"
    deadline = time.perf_counter() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(health) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                if time.perf_counter() > deadline:
                    raise
            await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--images", required=True, help="JSON file: a list of 784-pixel lists")
    args = parser.parse_args()
    with open(args.images) as stream:
        bodies = [json.dumps({"pixels": pixels}).encode() for pixels in json.load(stream)]
    asyncio.run(wait_until_up(args.url))
    print(json.dumps(asyncio.run(load(args.url, args.clients, args.seconds, bodies))))


if __name__ == "__main__":
    main()
