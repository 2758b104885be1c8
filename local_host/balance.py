"""Sharing connections evenly between serving processes (``FUNCTIONS_WORKER_PROCESS_COUNT``).

Processes that all accept on one listening socket split the connections by chance: the first to
wake takes every connection waiting, and 8 clients arriving together could land 8 to 0, leaving
a process idle (measured: docs/benchmarks.md). The Functions host hands each invocation to a
worker itself. Here each process counts its open connections in memory the processes share, and
accepts only while it holds no more than the least loaded one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

logger = logging.getLogger(__name__)

# How long a process that holds more than another waits before it looks again: the other one,
# if busy with a request, accepts once that request is answered.
TURN_SECONDS = 0.001
# The count of a process that does not accept (not started yet, stopped or gone): never the least.
NOT_SERVING = 2**31 - 1


def connection_counts(processes: int) -> SynchronizedArray | Any:
    """Open-connection counts for ``processes`` processes, in memory a spawned process shares
    (handed to it when it starts); each is NOT_SERVING until its process listens."""
    return multiprocessing.get_context("spawn").Array("i", [NOT_SERVING] * processes, lock=False)


@dataclass(frozen=True)
class ConnectionShare:
    """One process's place in the open-connection counts of all of them."""

    counts: SynchronizedArray | Any  # one int per process, in shared memory
    index: int

    def serving(self) -> None:
        self.counts[self.index] = 0

    def not_serving(self) -> None:
        self.counts[self.index] = NOT_SERVING

    def opened(self) -> None:
        self.counts[self.index] += 1

    def closed(self) -> None:
        if self.counts[self.index] != NOT_SERVING:
            self.counts[self.index] -= 1

    def has_the_turn(self) -> bool:
        """True while no process holds fewer connections than this one."""
        return self.counts[self.index] <= min(self.counts)


class BalancedListener:
    """Accepts one connection at a time on a listening socket several processes share, when
    its process has the turn; otherwise looks again after TURN_SECONDS. What aiohttp needs of a
    server: ``sockets`` and ``close()``."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        share: ConnectionShare,
    ) -> None:
        self._sock, self._protocol_factory, self._share = sock, protocol_factory, share
        self._loop = asyncio.get_running_loop()
        self._sock.setblocking(False)
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._accept)

    @property
    def sockets(self) -> Sequence[socket.socket]:
        return () if self._closed else (self._sock,)

    def _accept(self) -> None:
        if not self._share.has_the_turn():
            self._loop.remove_reader(self._sock.fileno())
            self._loop.call_later(TURN_SECONDS, self._look_again)
            return
        try:
            connection, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another process took it
        except OSError as error:  # out of file descriptors, say: the next try may do
            logger.warning("Accepting a connection failed: %s", error)
            return
        # Counted at once, not when its protocol is made: another process looking meanwhile
        # would see this one a connection short, and take the next one out of turn too.
        self._share.opened()
        connection.setblocking(False)
        self._loop.create_task(self._serve(connection))

    def _look_again(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    async def _serve(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, connection)
        except OSError as error:
            logger.warning("A connection closed before it was served: %s", error)
            connection.close()
            self._share.closed()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    async def wait_closed(self) -> None:
        return None
