"""A per-client limit for an endpoint that writes: each client may send `per_minute` requests a
minute, and save up that many (a token bucket). Kept per instance, in memory, for at most
`max_clients` clients: the least recently seen are forgotten first, so a flood of addresses
costs bounded memory, and a forgotten client gets a fresh allowance. It slows a person or a
script down; a caller with more addresses than that (IPv6 counted by /64) is beyond any limit
kept per address."""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from functions.api.problems import TooManyRequests

MAX_ADDRESS_CHARS = 64  # "[IPv6%zone]:port" at its longest is well under this
ANONYMOUS = "-"  # every request without a readable X-Forwarded-For address: one client


class ClientRateLimit:
    def __init__(
        self,
        per_minute: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = max(1.0, per_minute)  # under one a minute still allows one at a time
        self.per_second = per_minute / 60.0
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, as of
        self._lock = threading.Lock()  # the worker runs plain functions in a thread pool

    def take(self, client: str) -> None:
        """Spend one of `client`'s requests; TooManyRequests with Retry-After when none is left."""
        with self._lock:
            now = self.clock()
            tokens, as_of = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - as_of) * self.per_second)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[client] = (tokens, now)  # most recently seen last
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        if not allowed:
            wait = (1 - tokens) / self.per_second
            raise TooManyRequests(
                "too many corrections from this address; retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def client_address(headers: Mapping[str, str]) -> str:
    """The last address in X-Forwarded-For, the one the platform's front end appends (anything
    before it the client may have written), without its port. An IPv6 client counts by its /64,
    the block one subscriber is given; anything that is no address is one client."""
    forwarded = headers.get("X-Forwarded-For") or ""
    last = forwarded.rsplit(",", 1)[-1].strip()[:MAX_ADDRESS_CHARS]
    if last.startswith("["):  # [IPv6]:port
        last = last[1:].split("]", 1)[0]
    elif last.count(":") == 1:  # IPv4:port
        last = last.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(last)
    except ValueError:
        return ANONYMOUS
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is that IPv4 client
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
