"""Connections shared evenly between processes that accept on one listening socket. Two listeners
in one process on copies of one socket stand for two processes here; tests/test_local_host.py
runs the real processes."""

from __future__ import annotations

import asyncio
import os
import socket

from local_host.balance import NOT_SERVING, BalancedListener, ConnectionShare, connection_counts


def test_the_turn_goes_to_the_least_loaded_of_the_processes_serving() -> None:
    counts = connection_counts(3)
    first, second, third = (ConnectionShare(counts, index) for index in range(3))
    assert list(counts) == [NOT_SERVING] * 3  # none listening yet
    first.serving()
    assert first.has_the_turn()  # the others are not serving yet: nobody to wait for
    second.serving()
    first.opened()
    assert (first.has_the_turn(), second.has_the_turn()) == (False, True)
    second.opened()
    assert (first.has_the_turn(), second.has_the_turn()) == (True, True)  # even: either
    third.serving()
    assert (first.has_the_turn(), third.has_the_turn()) == (False, True)
    third.not_serving()  # stopped, or gone
    third.closed()
    assert counts[2] == NOT_SERVING
    assert first.has_the_turn()


def test_listeners_on_one_socket_take_connections_in_turn() -> None:
    async def scenario() -> list[int]:
        listening = socket.create_server(("127.0.0.1", 0))
        copy = socket.socket(fileno=os.dup(listening.fileno()))
        counts = connection_counts(2)
        shares = [ConnectionShare(counts, 0), ConnectionShare(counts, 1)]
        for share in shares:
            share.serving()
        listeners = [
            BalancedListener(sock, asyncio.Protocol, share)
            for sock, share in zip((listening, copy), shares, strict=True)
        ]
        port = listening.getsockname()[1]
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(6)]
        await asyncio.sleep(0.1)  # every connection accepted
        for listener in listeners:
            listener.close()
        for _, writer in clients:
            writer.close()
        return list(counts)

    assert asyncio.run(scenario()) == [3, 3]
