"""A dropped file is never read whole before its size is checked: the promoter (an Event Grid
trigger since the promotion moved off the blob trigger, which had the host download the whole
blob first) reads the blob itself, and takes at most MAX_MODEL_BYTES of it, whatever its size.

Counted on the wire: the promoter's storage client talks to a real Azurite through a proxy that
counts every byte Azurite sends back."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import ContainerClient

from functions.promotion.gate import MAX_MODEL_BYTES
from functions.storage.model_registry import ModelRegistry
from local_stack.azurite import AZURITE_ACCOUNT, AZURITE_KEY
from tests.promotion.test_promotion import make_promoter

MIB = 1024 * 1024
# Requests and answers around the content: properties, the lease, metadata, the rejection record,
# the audit line, the delete (a few KB in all).
OVERHEAD_BYTES = 256 * 1024


class CountingProxy:
    """A TCP proxy to `upstream` on a free loopback port: `received` counts the bytes that
    came back from upstream."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.received = upstream, 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed
            while True:
                client, _ = self._server.accept()
                upstream = socket.create_connection(self.upstream)
                threading.Thread(
                    target=self._pump, args=(client, upstream, False), daemon=True
                ).start()
                threading.Thread(
                    target=self._pump, args=(upstream, client, True), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(256 * 1024):
                if counted:
                    with self._lock:
                        self.received += len(data)
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()


class Zeros(io.RawIOBase):
    """`size` zero bytes, read as they are uploaded: no 400 MB buffer in the test."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


@pytest.fixture
def counted(azurite_process, container) -> Iterator[tuple[CountingProxy, ContainerClient]]:
    """The test's container, and the same container reached through a counting proxy."""
    proxy = CountingProxy(("127.0.0.1", azurite_process.port))
    through_proxy = ContainerClient.from_connection_string(
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{proxy.port}/{AZURITE_ACCOUNT};",
        container.container_name,
        retry_total=0,
    )
    try:
        yield proxy, through_proxy
    finally:
        through_proxy.close()
        proxy.close()


def decide_through(proxy: CountingProxy, container: ContainerClient, bundled, name: str):
    before = proxy.received
    decision = make_promoter(ModelRegistry(container), bundled).handle(name)
    return decision, proxy.received - before


def rejected_for_size(decision) -> bool:
    return decision.decision == "rejected" and decision.record["check"] == "size"


@pytest.mark.slow
def test_a_400_mb_drop_is_refused_by_its_size_without_reading_it(container, counted, bundled):
    proxy, through_proxy = counted
    name = f"huge-{uuid.uuid4().hex[:8]}.onnx"
    size = 400 * MIB
    container.upload_blob(f"incoming/{name}", Zeros(size), length=size, max_concurrency=4)

    decision, received = decide_through(proxy, through_proxy, bundled, name)

    print(f"\n400 MiB drop: {received} bytes came back from storage while deciding on it")
    assert rejected_for_size(decision), decision
    assert str(size) in decision.record["reason"]
    # Nothing of the content came back: at most the limit + 1 bytes may ever be read.
    assert received <= OVERHEAD_BYTES < MAX_MODEL_BYTES + 1, received
    assert not container.get_blob_client(f"incoming/{name}").exists()


@pytest.mark.parametrize(
    ("size", "read_in_full"),
    [(MAX_MODEL_BYTES + 1, False), (MAX_MODEL_BYTES, True)],
    ids=["one byte over the limit: not read", "at the limit: read, once"],
)
def test_the_limit_is_where_reading_stops(container, counted, bundled, size, read_in_full):
    proxy, through_proxy = counted
    name = f"edge-{uuid.uuid4().hex[:8]}.onnx"
    container.upload_blob(f"incoming/{name}", Zeros(size), length=size)

    decision, received = decide_through(proxy, through_proxy, bundled, name)

    print(f"\na drop of {size} bytes: {received} bytes came back from storage")
    assert decision.decision == "rejected"  # zeros are no model, whatever their size
    assert rejected_for_size(decision) is not read_in_full
    if read_in_full:
        assert MAX_MODEL_BYTES <= received <= MAX_MODEL_BYTES + OVERHEAD_BYTES
    else:
        assert received <= OVERHEAD_BYTES
