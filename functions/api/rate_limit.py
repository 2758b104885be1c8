"""The limits of an endpoint that writes (contracts.md section 4, POST /api/feedback), kept per
instance, in memory.

- Per client: each client may send `per_minute` requests a minute, and save up that many (a token
  bucket). A client is the address the platform's front end saw: an IPv4 address, or an IPv6 /64
  (the block one subscriber is given). An IPv6 /64 also counts against its /48 (the block one
  site is given), which may send NETWORK_FACTOR times one client's allowance: a /48 holds 65,536
  /64s, and going through them gains nothing past that.
- Per instance: at most `per_instance_per_minute` requests a minute (a bucket as above) and
  `per_instance_per_day` a UTC day, whoever sends them, so that any number of addresses together
  still cannot write more than that. A request counts against these only once its client's
  buckets let it through: one client's refused flood spends nobody else's allowance.
- A request without a readable address counts against no bucket: it is refused (403). The
  front end in Azure, and the local host, always append one.

Buckets are kept for at most `max_clients` keys: the least recently seen are forgotten first, so
a flood of addresses costs bounded memory, and a forgotten client gets a fresh allowance (a /48
that is being rotated through is seen at every request, and stays). Addresses are kept here only,
never stored or logged."""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol

from functions.api.problems import ApiError, TooManyRequests

MAX_ADDRESS_CHARS = 64  # "[IPv6%zone]:port" at its longest is well under this
CLIENT_PREFIX = 64  # an IPv6 client: one subscriber's block
NETWORK_PREFIX = 48  # an IPv6 network: one site's block, NETWORK_FACTOR clients' allowance
NETWORK_FACTOR = 4
SECONDS_A_DAY = 86_400
WARN_EVERY_SECONDS = 60.0  # a refusal that says something is wrong is logged at most this often
log = logging.getLogger(__name__)


class UnknownClient(ApiError):
    """No address to count the request against: nothing to hold it to, so it is not taken."""

    status = HTTPStatus.FORBIDDEN


class InstanceFull(ApiError):
    """This instance has taken all it takes this minute or this day: no fault of the client."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class LimitSettings(Protocol):
    feedback_per_minute: float
    feedback_per_instance_per_minute: float
    feedback_per_instance_per_day: float


@dataclass(frozen=True)
class Client:
    """Whom a request counts against: its address (IPv4, or an IPv6 /64) and, for IPv6, the /48
    that holds it."""

    address: str
    network: str | None = None


@dataclass(frozen=True)
class Rate:
    capacity: float  # what may be saved up: a minute's worth, at least one
    per_second: float

    @classmethod
    def per_minute(cls, per_minute: float) -> Rate:
        return cls(max(1.0, per_minute), per_minute / 60.0)

    def refilled(self, tokens: float, as_of: float, now: float) -> float:
        """What a bucket that held `tokens` at `as_of` holds at `now`."""
        return min(self.capacity, tokens + (now - as_of) * self.per_second)

    def wait(self, tokens: float) -> float:
        """Seconds until a bucket holding `tokens` holds one; 0 or less when it does now."""
        return (1 - tokens) / self.per_second


class ClientRateLimit:
    def __init__(
        self,
        per_minute: float,
        *,
        per_instance_per_minute: float | None = None,
        per_instance_per_day: float | None = None,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_rate = Rate.per_minute(per_minute)  # under one a minute: one at a time
        self.network_rate = Rate.per_minute(NETWORK_FACTOR * per_minute)
        self.instance_rate = (
            Rate.per_minute(per_instance_per_minute) if per_instance_per_minute else None
        )
        self.per_day = per_instance_per_day
        self.max_clients = max_clients
        self.clock = clock
        self.wall_clock = wall_clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, as of
        self._instance = (self.instance_rate.capacity if self.instance_rate else 0.0, clock())
        self._day, self._taken_today = -1, 0
        self._warned_at = -math.inf
        self._lock = threading.Lock()  # requests may be answered on several threads at once

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> ClientRateLimit:
        return cls(
            settings.feedback_per_minute,
            per_instance_per_minute=settings.feedback_per_instance_per_minute,
            per_instance_per_day=settings.feedback_per_instance_per_day,
        )

    def take(self, client: Client) -> None:
        """Spend one of `client`'s requests and one of the instance's: TooManyRequests (429)
        when the client has none left, InstanceFull (503) when the instance has none left; each
        with Retry-After, and nothing spent then."""
        with self._lock:
            now = self.clock()
            buckets = [(client.address, self.client_rate)]
            if client.network is not None:
                buckets.append((client.network, self.network_rate))
            levels = [self._level(key, rate, now) for key, rate in buckets]
            waits = [rate.wait(tokens) for (_, rate), tokens in zip(buckets, levels, strict=True)]
            if max(waits) > 0:
                self._keep(buckets, levels, now)
                refused_by = "network" if waits[0] <= 0 else "address"
                raise TooManyRequests(
                    f"too many corrections from this {refused_by}; retry later",
                    headers={"Retry-After": _seconds(max(waits))},
                )
            full = self._instance_full(now)
            if full is not None:
                self._keep(buckets, levels, now)
                raise full
            self._keep(buckets, [tokens - 1 for tokens in levels], now)
            if self.instance_rate is not None:
                self._instance = (self._instance[0] - 1, now)
            self._taken_today += 1

    def _level(self, key: str, rate: Rate, now: float) -> float:
        tokens, as_of = self._buckets.pop(key, (rate.capacity, now))
        return rate.refilled(tokens, as_of, now)

    def _keep(self, buckets: list[tuple[str, Rate]], levels: list[float], now: float) -> None:
        for (key, _), tokens in zip(buckets, levels, strict=True):
            self._buckets[key] = (tokens, now)  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def _instance_full(self, now: float) -> InstanceFull | None:
        """Why the instance takes no more now, with Retry-After; None when it takes one more."""
        if self.instance_rate is not None:
            tokens, as_of = self._instance
            tokens = self.instance_rate.refilled(tokens, as_of, now)
            self._instance = (tokens, now)
            if tokens < 1:
                return self._full("this minute", self.instance_rate.wait(tokens), now)
        if self.per_day is not None:
            wall = self.wall_clock()
            day = math.floor(wall / SECONDS_A_DAY)  # Unix time: days begin at midnight UTC
            if day != self._day:
                self._day, self._taken_today = day, 0
            if self._taken_today >= max(1.0, self.per_day):
                return self._full("today (UTC)", (day + 1) * SECONDS_A_DAY - wall, now)
        return None

    def _full(self, when: str, wait: float, now: float) -> InstanceFull:
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("feedback: this instance has taken all the corrections it takes %s", when)
        return InstanceFull(
            f"the service takes no more corrections {when}; nothing was stored; retry later",
            headers={"Retry-After": _seconds(wait)},
        )


def _seconds(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


def client_address(headers: Mapping[str, str]) -> Client:
    """The client of a request: the last address in X-Forwarded-For, the one the platform's front
    end appends (anything before it the client may have written), without its port. An IPv6
    client counts by its /64 and its /48; UnknownClient (403) when there is no address there."""
    forwarded = headers.get("X-Forwarded-For") or ""
    last = forwarded.rsplit(",", 1)[-1].strip()[:MAX_ADDRESS_CHARS]
    if last.startswith("["):  # [IPv6]:port
        last = last[1:].split("]", 1)[0]
    elif last.count(":") == 1:  # IPv4:port
        last = last.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(last)
    except ValueError:
        # Never the header itself in the log: it may hold addresses.
        log.warning("feedback: refused a request without a client address in X-Forwarded-For")
        raise UnknownClient(
            "the request came without the client address the platform adds "
            "(X-Forwarded-For); nothing was stored"
        ) from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is that IPv4 client
            return Client(str(address.ipv4_mapped))
        return Client(_block(address, CLIENT_PREFIX), _block(address, NETWORK_PREFIX))
    return Client(str(address))


def _block(address: ipaddress.IPv6Address, prefix: int) -> str:
    """The /prefix holding `address` (its zone, if any, dropped)."""
    bits = 128 - prefix
    return str(ipaddress.IPv6Network((int(address) >> bits << bits, prefix)))
