"""POST /api/feedback against a real Azurite container: good corrections stored exactly once,
every bad input refused with its status and nothing stored, the per-client rate limit, and
storage that is down or hangs (contracts.md sections 2a and 4). The ways around the limits
(spoofed addresses, IPv6 rotation, no address, many clients at once) are
tests/api/test_feedback_limits.py's."""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from collections.abc import Iterator

import azure.functions as func
import numpy as np
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from functions.api import handlers
from functions.api.feedback_codec import MAX_FEEDBACK_BYTES
from functions.api.problems import STORAGE_RETRY_AFTER, TooManyRequests
from functions.api.rate_limit import Client, ClientRateLimit, UnknownClient, client_address
from functions.composition import Services
from functions.feedback.item import STORED_FIELDS, blob_name, item_from_stored, item_id
from functions.feedback.store import FeedbackStore
from functions.settings import MissingSetting
from functions.storage.clients import SERVING_READ_TIMEOUT_SECONDS, serving_options
from functions.storage.names import VERSION_PATTERN
from tests.helpers import call, http_request, problem_of
from tests.stack import REPO_ROOT, Azurite, running_azurite

CLOSED_PORT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def digit(mnist) -> tuple[np.ndarray, int]:
    """A test 7 the bundled model reads right, and the wrong digit a person corrects it from."""
    index = int(np.flatnonzero(mnist["y_test"] == 7)[0])
    return mnist["x_test"][index], 7


def feedback_services(container: ContainerClient, limit: ClientRateLimit | None = None):
    limit = limit or ClientRateLimit(1000)
    return Services(feedback_store=FeedbackStore(container), feedback_limit=limit)


def correction(pixels: np.ndarray, label: int, **changes) -> dict:
    return {
        "pixels": pixels.tolist(),
        "predicted": 1,
        "label": label,
        "model_version": "mnist-cnn-1.2.0",
        **changes,
    }


def send(services, body, *, client: str | None = "192.0.2.1", **options) -> func.HttpResponse:
    """POSTed as the platform's front end hands it on: with the client's address last in
    X-Forwarded-For (`client`), or, with None, without the header."""
    request = http_request("POST", "feedback", body, **options)
    if client is not None:
        request = func.HttpRequest(
            "POST",
            request.url,
            headers={**request.headers, "X-Forwarded-For": client},
            body=request.get_body(),
        )
    return call(handlers.feedback, request, services)


def stored(container: ContainerClient) -> dict[str, dict]:
    return {
        blob.name: json.loads(container.download_blob(blob.name).readall())
        for blob in container.list_blobs()
    }


# --- good corrections -----------------------------------------------------------------------


def test_a_correction_is_stored_once_under_its_content_hash(feedback_container, digit):
    pixels, label = digit
    services = feedback_services(feedback_container)
    answer = send(services, correction(pixels, label))
    assert answer.status_code == 202, answer.get_body()
    identifier = json.loads(answer.get_body())["item"]
    assert identifier == item_id(pixels, label)

    items = stored(feedback_container)
    assert list(items) == [blob_name(identifier)]
    document = items[blob_name(identifier)]
    assert set(document) == STORED_FIELDS
    assert document["pixels"] == pixels.tolist()
    assert (document["label"], document["predicted"]) == (label, 1)
    assert document["model_version"] == "mnist-cnn-1.2.0"
    assert item_from_stored(document).id == identifier  # what training reads back


def test_sending_the_same_correction_again_stores_nothing_new(feedback_container, digit):
    pixels, label = digit
    services = feedback_services(feedback_container)
    first = send(services, correction(pixels, label))
    before = stored(feedback_container)
    etag = next(iter(feedback_container.list_blobs())).etag
    # The same image in the other pixel form, as floats that round to the same whole numbers.
    floats = np.clip(pixels.ravel() + 0.2, 0, 255).tolist()
    again = send(services, {**correction(pixels, label), "pixels": floats})
    assert again.status_code == 202
    assert again.get_body() == first.get_body()
    assert stored(feedback_container) == before
    assert next(iter(feedback_container.list_blobs())).etag == etag  # never rewritten


def test_another_label_for_the_same_drawing_is_another_item(feedback_container, digit):
    pixels, label = digit
    services = feedback_services(feedback_container)
    assert send(services, correction(pixels, label)).status_code == 202
    assert send(services, correction(pixels, 9, predicted=7)).status_code == 202
    assert len(stored(feedback_container)) == 2


def test_the_first_correction_creates_a_missing_container(azurite, digit):
    container = ContainerClient.from_connection_string(azurite, f"new-{uuid.uuid4().hex[:8]}")
    pixels, label = digit
    try:
        assert send(feedback_services(container), correction(pixels, label)).status_code == 202
        assert len(stored(container)) == 1
    finally:
        container.delete_container()


# --- bad inputs: refused with their status, nothing stored ----------------------------------

SEVEN = np.zeros((28, 28), dtype=np.uint8)
SEVEN[5:22, 10:18] = 255
GOOD = correction(SEVEN, 7)


def without(name: str) -> dict:
    return {key: value for key, value in GOOD.items() if key != name}


BAD_BODIES = {
    "not JSON": (b'{"pixels": [1, 2', 400),
    "an array": ([0] * 784, 400),
    "a string": ('"hello"', 400),
    "no pixels": (without("pixels"), 400),
    "no label": (without("label"), 400),
    "no predicted": (without("predicted"), 400),
    "no model_version": (without("model_version"), 400),
    "an unknown field": ({**GOOD, "comment": "free text"}, 400),
    "a right answer": ({**GOOD, "predicted": 7}, 400),
    "label 10": ({**GOOD, "label": 10}, 400),
    "label -1": ({**GOOD, "label": -1}, 400),
    "label as a string": ({**GOOD, "label": "7"}, 400),
    "label as a float": ({**GOOD, "label": 7.0}, 400),
    "label true": ({**GOOD, "label": True, "predicted": 0}, 400),
    "predicted null": ({**GOOD, "predicted": None}, 400),
    "a version with a path": ({**GOOD, "model_version": "../current"}, 400),
    "a version as a number": ({**GOOD, "model_version": 12}, 400),
    "a blank image": ({**GOOD, "pixels": [0] * 784}, 400),
    "783 pixels": ({**GOOD, "pixels": [0] * 783}, 400),
    "a pixel over 255": ({**GOOD, "pixels": [256] + [0] * 783}, 400),
    "a negative pixel": ({**GOOD, "pixels": [-1] + [255] * 783}, 400),
    "a pixel that is true": ({**GOOD, "pixels": [True] + [255] * 783}, 400),
    "NaN": (json.dumps(GOOD).replace("255", "NaN", 1), 400),
    "over 64 KiB": (b" " * (MAX_FEEDBACK_BYTES - 10) + json.dumps(GOOD).encode(), 413),
    "empty": (b"", 400),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_a_bad_correction_is_refused_and_nothing_is_stored(feedback_container, case):
    body, status = BAD_BODIES[case]
    answer = send(feedback_services(feedback_container), body)
    assert answer.status_code == status
    assert problem_of(answer)["detail"]
    assert stored(feedback_container) == {}


def test_other_content_types_and_compressed_bodies_are_refused(feedback_container):
    services = feedback_services(feedback_container)
    text = send(services, json.dumps(GOOD), content_type="text/plain")
    assert text.status_code == 415
    assert problem_of(send(services, b"", content_type="image/png"))["status"] == 415
    squeezed = func.HttpRequest(
        "POST",
        "http://localhost:7071/api/feedback",
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-Forwarded-For": "192.0.2.1",
        },
        body=gzip.compress(json.dumps(GOOD).encode()),
    )
    answer = call(handlers.feedback, squeezed, services)
    assert answer.status_code == 415
    assert answer.headers["Accept-Encoding"] == "identity"
    assert stored(feedback_container) == {}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_post_is_allowed(feedback_container, method):
    services = feedback_services(feedback_container)
    answer = call(handlers.feedback, http_request(method, "feedback"), services)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"


def test_a_problem_never_echoes_the_request(feedback_container):
    answer = send(feedback_services(feedback_container), {**GOOD, "model_version": "<script>x"})
    assert answer.status_code == 400
    assert "<script>" not in answer.get_body().decode()


# --- the rate limit -------------------------------------------------------------------------


def test_a_client_over_its_allowance_gets_429_with_retry_after(feedback_container):
    clock = ManualClock()
    services = feedback_services(feedback_container, ClientRateLimit(3, clock=clock))
    images = [np.roll(SEVEN, shift, axis=1) for shift in range(6)]

    statuses = [
        send(services, correction(image, 7), client="203.0.113.5:1111").status_code
        for image in images[:3]
    ]
    assert statuses == [202, 202, 202]
    refused = send(services, correction(images[3], 7), client="203.0.113.5:2222")
    assert refused.status_code == 429
    assert problem_of(refused)["status"] == 429
    assert refused.headers["Retry-After"] == "20"  # 3 a minute: the next one in 20 s

    # Another address is another client; a forged first address changes nothing.
    assert send(services, correction(images[3], 7), client="198.51.100.7").status_code == 202
    forged = send(services, correction(images[4], 7), client="198.51.100.99, 203.0.113.5:3333")
    assert forged.status_code == 429

    clock.now += 20
    assert send(services, correction(images[4], 7), client="203.0.113.5:4444").status_code == 202
    assert send(services, correction(images[5], 7), client="203.0.113.5:4444").status_code == 429
    assert len(stored(feedback_container)) == 5  # the refused ones stored nothing


def test_refused_requests_count_against_the_allowance(feedback_container):
    services = feedback_services(feedback_container, ClientRateLimit(2, clock=ManualClock()))
    assert send(services, b"not json").status_code == 400
    assert send(services, b"not json").status_code == 400
    assert send(services, GOOD).status_code == 429


def test_a_limit_under_one_a_minute_still_lets_one_through():
    clock = ManualClock()
    limit = ClientRateLimit(0.5, clock=clock)
    limit.take(Client("a"))
    with pytest.raises(TooManyRequests) as refused:
        limit.take(Client("a"))
    assert refused.value.headers["Retry-After"] == "120"
    clock.now += 120
    limit.take(Client("a"))


def test_the_limit_remembers_a_bounded_number_of_clients():
    clock = ManualClock()
    limit = ClientRateLimit(1, max_clients=3, clock=clock)
    for client in ("a", "b", "c", "d"):
        limit.take(Client(client))
    limit.take(Client("a"))  # forgotten when "d" came: a fresh allowance, at worst
    with pytest.raises(TooManyRequests):
        limit.take(Client("d"))  # remembered
    assert len(limit._buckets) == 3


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("203.0.113.5", Client("203.0.113.5")),
        ("203.0.113.5:51234", Client("203.0.113.5")),
        ("10.0.0.1, 203.0.113.5:443", Client("203.0.113.5")),
        ("10.0.0.1,127.0.0.1", Client("127.0.0.1")),  # as the local host appends its peer
        ("[2001:DB8::1]:443", Client("2001:db8::/64", "2001:db8::/48")),
        ("2001:db8::1", Client("2001:db8::/64", "2001:db8::/48")),
        # Another address of the same subscriber; another subscriber of the same site.
        ("2001:db8:0:0:ffff::7", Client("2001:db8::/64", "2001:db8::/48")),
        ("2001:db8:0:1::1", Client("2001:db8:0:1::/64", "2001:db8::/48")),
        ("2001:db8:1::1", Client("2001:db8:1::/64", "2001:db8:1::/48")),
        ("[fe80::1%eth0]:443", Client("fe80::/64", "fe80::/48")),
        ("[::ffff:203.0.113.5]:443", Client("203.0.113.5")),
    ],
)
def test_the_client_is_the_last_forwarded_address(header, client):
    assert client_address({"X-Forwarded-For": header}) == client


@pytest.mark.parametrize(
    "header", [None, "", "unknown", "203.0.113.5, not-an-address", "203.0.113.5,", "1" * 500]
)
def test_no_address_in_the_last_place_is_no_client(header):
    headers = {} if header is None else {"X-Forwarded-For": header}
    with pytest.raises(UnknownClient) as refused:
        client_address(headers)
    assert refused.value.problem()["status"] == 403


# --- storage down or hanging ----------------------------------------------------------------


class ContainerBeingDeleted:
    """A container that answers every write as Azure does while it is being deleted: with the
    same error class as "the blob exists", but another code."""

    def upload_blob(self, *args, **kwargs):
        error = ResourceExistsError("The specified container is being deleted.")
        error.error_code = "ContainerBeingDeleted"
        raise error

    def create_container(self):
        raise AssertionError("not asked: the container exists")


def test_a_write_refused_for_another_reason_than_existing_is_not_a_success(digit):
    answer = send(feedback_services(ContainerBeingDeleted()), correction(*digit))
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == STORAGE_RETRY_AFTER


def test_storage_down_is_503_with_retry_after(digit):
    pixels, label = digit
    down = ContainerClient.from_connection_string(
        CLOSED_PORT_STORAGE, "feedback", **serving_options()
    )
    answer = send(feedback_services(down), correction(pixels, label))
    assert answer.status_code == 503
    assert problem_of(answer)["detail"].startswith("storage is not taking corrections")
    assert answer.headers["Retry-After"] == STORAGE_RETRY_AFTER


def test_unconfigured_storage_is_503_and_names_the_setting_in_the_log(caplog, digit):
    def no_settings():
        raise MissingSetting("MODELS_STORAGE is not set")

    services = Services(read_settings=no_settings)
    answer = send(services, correction(*digit))
    assert answer.status_code == 503
    assert "MODELS_STORAGE" not in answer.get_body().decode()  # the client needs no internals
    assert "MODELS_STORAGE is not set" in caplog.text


@pytest.fixture(scope="module")
def own_storage(tmp_path_factory) -> Iterator[Azurite]:
    """An Azurite of this module's own, to stop with SIGSTOP."""
    with running_azurite(tmp_path_factory.mktemp("azurite-feedback")) as azurite:
        yield azurite


def test_storage_that_hangs_is_a_bounded_503_and_a_retry_stores_it_once(own_storage, digit):
    container = ContainerClient.from_connection_string(
        own_storage.connection_string, "feedback", **serving_options()
    )
    container.create_container()
    services = feedback_services(container)
    body = correction(*digit)
    with own_storage.frozen():
        started = time.monotonic()
        answer = send(services, body)
        waited = time.monotonic() - started
    assert answer.status_code == 503
    assert waited < SERVING_READ_TIMEOUT_SECONDS + 3
    # Storage may have taken the item after all: the client's retry is safe, one item either way.
    assert send(services, body).status_code == 202
    assert len(stored(container)) == 1


def test_the_site_offers_corrections_for_the_version_names_the_api_takes():
    """static-web/js/correction.js keeps its own copy of the pattern (no build step to share
    it): this ties the two together."""
    source = (REPO_ROOT / "static-web" / "js" / "correction.js").read_text()
    site_pattern = re.search(r"const VERSION_NAME = /(.+)/;", source).group(1)
    assert site_pattern == f"^{VERSION_PATTERN.pattern}$"
