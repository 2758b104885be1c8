"""The drop zone's claims (functions/storage/claims.py): the lease on a dropped file is kept while
its decision runs, up to a hard limit, through storage hiccups, and let go once lost."""

from __future__ import annotations

import time

from functions.storage import claims


def test_the_claim_keeper_stops_at_its_hard_limit(container):
    blob = container.upload_blob("incoming/v2.onnx", b"x")
    lease = blob.acquire_lease(lease_duration=15)
    with claims.ClaimKeeper(lease, every=0.2, limit_seconds=1.0) as keeper:
        time.sleep(3.0)  # well past the limit
        renewals = keeper.renewals
        time.sleep(1.0)
        assert keeper.renewals == renewals  # it let go, although the block still runs
    assert 1 <= renewals <= 5
    lease.release()


class FlakyLease:
    """A lease whose first renewals fail as a storage outage would, then succeed."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def renew(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


def test_the_claim_keeper_keeps_renewing_after_a_storage_hiccup():
    from azure.core.exceptions import ServiceRequestError  # noqa: PLC0415

    lease = FlakyLease(failures=2, error=ServiceRequestError("connection refused"))
    with claims.ClaimKeeper(lease, every=0.1, limit_seconds=5.0) as keeper:
        time.sleep(1.0)
    assert keeper.renewals >= 3  # the two failures did not end the renewals


def test_the_claim_keeper_stops_once_the_lease_is_lost():
    from azure.core.exceptions import HttpResponseError  # noqa: PLC0415

    lost = HttpResponseError("lease lost")
    lost.status_code = 412
    lease = FlakyLease(failures=100, error=lost)
    with claims.ClaimKeeper(lease, every=0.1, limit_seconds=5.0) as keeper:
        time.sleep(1.0)
    assert lease.calls == 1
    assert keeper.renewals == 0
