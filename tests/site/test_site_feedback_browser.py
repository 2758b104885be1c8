"""Corrections and the models page in headless Chromium, against the local host and Azurite that
`make run` starts: a wrong answer corrected with the mouse and from the keyboard (and stored in
the feedback container, docs/contracts.md section 2a), nothing sent without a pick, failures put
into words, an upload's correction carrying the pixels /predict got, and /models showing a
refused drop with its reason. Screenshots: test-artifacts/site-feedback.png, models.png.

Chromium comes from Debian (`apt-get install chromium`), never from `playwright install`.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from playwright.sync_api import Browser, Page, Request, Route, expect

from local_host.event_grid import webhook_url
from tests.helpers import blob_created, contract_item_id, picture_of_digit
from tests.site.test_site_browser import (  # the same browser, pages and pen as the site's tests
    ARTIFACTS,
    DESKTOP,
    ONE,
    QUIET_MS,
    SEVEN,
    SitePage,
    browser,  # noqa: F401 - a fixture
    draw_one_with_the_keyboard,
    draw_with_mouse,
    open_site,
    wait_for_answer,
)

GROUP_NAME = "Wrong? Pick the right digit"
FEEDBACK_CONTAINER = "feedback"  # the default of FEEDBACK_CONTAINER, which base_url leaves unset
DECISION_TIMEOUT_S = 90  # the gate's trial in a child process, then the listing's 10 s refresh


@pytest.fixture
def site(browser: Browser, site_url: str) -> Iterator[tuple[SitePage, list[Request]]]:  # noqa: F811
    """A desktop page of the site, and every request it made to /api/feedback. Each page is a
    client of its own to the rate limit (the last X-Forwarded-For address, as the platform's
    front end appends it), so that other tests' corrections do not use up its allowance."""
    address = ".".join(str(byte) for byte in uuid.uuid4().bytes[:3])
    context = browser.new_context(
        **DESKTOP, extra_http_headers={"X-Forwarded-For": f"10.{address}"}
    )
    page = open_site(context, site_url)
    sent: list[Request] = []
    page.page.on("request", lambda r: sent.append(r) if r.url.endswith("/api/feedback") else None)
    yield page, sent
    context.close()


def feedback_group(page: Page):
    return page.get_by_role("group", name=GROUP_NAME)


def digit_button(page: Page, digit: int):
    return feedback_group(page).get_by_role("button", name=str(digit), exact=True)


def stored_item(azurite: str, item: str) -> dict:
    with BlobServiceClient.from_connection_string(azurite) as service:
        blob = service.get_blob_client(FEEDBACK_CONTAINER, f"items/{item}.json")
        return json.loads(blob.download_blob().readall())


def test_a_wrong_answer_corrected_with_the_mouse_is_stored(
    site: tuple[SitePage, list[Request]], azurite: str
) -> None:
    desktop, sent = site
    page = desktop.page
    expect(feedback_group(page)).to_be_hidden()  # no answer, nothing to correct
    with page.expect_response("**/api/predict") as predicted:
        draw_with_mouse(page, SEVEN)
    wait_for_answer(page)
    answer = predicted.value.json()
    pixels_sent = json.loads(predicted.value.request.post_data)["pixels"]
    assert answer["prediction"] == 7
    expect(feedback_group(page)).to_be_visible()
    expect(digit_button(page, 7)).to_have_count(0)  # its name says it is the model's answer
    answer_button = feedback_group(page).get_by_role("button", name="7, the model's answer")
    expect(answer_button).to_be_disabled()

    with page.expect_response("**/api/feedback") as stored:
        digit_button(page, 3).click()
    assert stored.value.status == 202
    expect(page.locator("#feedback-status")).to_have_text("Thanks — saved as a 3.")
    body = json.loads(stored.value.request.post_data)
    assert body == {
        "pixels": pixels_sent,  # the very numbers /predict got
        "predicted": 7,
        "label": 3,
        "model_version": answer["model_version"],
    }

    item = stored.value.json()["item"]
    saved = stored_item(azurite, item)
    assert saved["label"] == 3
    assert saved["predicted"] == 7
    assert saved["model_version"] == answer["model_version"]
    assert contract_item_id(saved["pixels"], 3) == item
    assert np.abs(np.asarray(saved["pixels"]).ravel() - np.asarray(pixels_sent)).max() <= 0.5

    # One correction per answer: every digit, and "Not a digit", is off now, and another click
    # sends nothing.
    for digit in (0, 1, 2, 3, 4, 5, 6, 8, 9):
        expect(digit_button(page, digit)).to_have_attribute("aria-disabled", "true")
    not_digit = feedback_group(page).get_by_role("button", name="Not a digit")
    expect(not_digit).to_have_attribute("aria-disabled", "true")
    expect(not_digit).to_have_attribute("aria-pressed", "false")
    digit_button(page, 4).click(force=True)  # Playwright itself would not click it
    page.wait_for_timeout(QUIET_MS)
    assert len(sent) == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "site-feedback.png", full_page=True)

    # A new answer: a fresh offer.
    page.click("#clear")
    draw_with_mouse(page, ONE)
    wait_for_answer(page)
    expect(page.locator("#feedback-status")).to_have_text("")
    expect(digit_button(page, 3)).to_have_attribute("aria-disabled", "false")
    assert desktop.console_errors == []


def test_the_digits_work_from_the_keyboard_and_nothing_is_sent_unasked(
    site: tuple[SitePage, list[Request]], azurite: str
) -> None:
    desktop, sent = site
    page = desktop.page
    draw_one_with_the_keyboard(page)
    page.wait_for_timeout(QUIET_MS)
    assert sent == []  # an answer alone sends nothing: "right" needs no click

    # Screen readers: a named group of buttons named by their digit, and a polite status.
    group = feedback_group(page)
    expect(group).to_be_visible()
    names = [group.get_by_role("button").nth(i).get_attribute("aria-label") for i in range(10)]
    assert names[1] == "1, the model's answer"
    for digit in (0, 2, 9):
        expect(digit_button(page, digit)).to_be_enabled()
    status = group.get_by_role("status")
    expect(status).to_have_attribute("aria-live", "polite")

    # Tab reaches the digits after the pad's own controls, in order, skipping the answer, then
    # "Not a digit" beside them.
    focused = []
    for _ in range(20):
        page.keyboard.press("Tab")
        text = page.evaluate(
            "document.activeElement.closest('#feedback') ? document.activeElement.textContent : ''"
        )
        if text:
            focused.append(text.strip())
        elif focused:
            break
    assert focused == ["0", "2", "3", "4", "5", "6", "7", "8", "9", "Not a digit"]
    page.keyboard.press("Shift+Tab")  # back from past the group to its last button
    assert page.evaluate("document.activeElement.textContent.trim()") == "Not a digit"
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "7"
    assert sent == []  # moving through the digits sends nothing either

    with page.expect_response("**/api/feedback") as stored:
        page.keyboard.press("Enter")
    assert stored.value.status == 202
    expect(status).to_have_text("Thanks — saved as a 7.")
    assert json.loads(stored.value.request.post_data)["label"] == 7
    assert stored_item(azurite, stored.value.json()["item"])["label"] == 7
    # Focus stays on the button (aria-disabled, not disabled); Space on it sends nothing more.
    assert page.evaluate("document.activeElement.textContent") == "7"
    expect(digit_button(page, 7)).to_have_attribute("aria-disabled", "true")
    page.keyboard.press("Space")
    page.wait_for_timeout(QUIET_MS)
    assert len(sent) == 1
    assert desktop.console_errors == []


def problem(status: int, detail: str, retry_after: str) -> dict:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": detail}
    return {
        "status": status,
        "content_type": "application/problem+json",
        "headers": {"Retry-After": retry_after},
        "body": json.dumps(body),
    }


def test_refusals_are_put_into_words_and_the_digit_may_be_picked_again(
    site: tuple[SitePage, list[Request]],
) -> None:
    """The API's refusals, played by the browser: this needs no /api/feedback on the server."""
    desktop, sent = site
    page = desktop.page
    answers = [
        problem(429, "too many corrections from one client, at most 10 a minute", "6"),
        problem(503, "storage did not take the item; nothing was stored", "2"),
        {"status": 202, "content_type": "application/json", "body": '{"item": "x"}'},
    ]

    def fulfil(route: Route) -> None:
        route.fulfill(**answers.pop(0))

    page.route("**/api/feedback", fulfil)
    draw_with_mouse(page, SEVEN)
    wait_for_answer(page)
    status = page.locator("#feedback-status")

    digit_button(page, 1).click()
    expect(status).to_have_text(
        "Not saved: too many corrections from one client, at most 10 a minute. "
        "Try again later (in 6 seconds)."
    )
    expect(status).to_have_attribute("data-error", "")
    expect(digit_button(page, 1)).to_have_attribute("aria-disabled", "false")  # nothing stored

    digit_button(page, 1).click()
    expect(status).to_have_text(
        "Not saved: storage did not take the item; nothing was stored. "
        "Try again later (in 2 seconds)."
    )
    digit_button(page, 2).click()
    expect(status).to_have_text("Thanks — saved as a 2.")
    expect(status).not_to_have_attribute("data-error", "")
    assert [json.loads(r.post_data)["label"] for r in sent] == [1, 1, 2]
    # Chromium logs each refused request; nothing else went wrong.
    assert len(desktop.console_errors) == 2
    for error, code in zip(desktop.console_errors, ("429", "503"), strict=True):
        assert error.startswith("Failed to load resource"), error
        assert code in error, error


def test_an_uploaded_picture_is_corrected_with_the_pixels_predict_got(
    site: tuple[SitePage, list[Request]], mnist: dict[str, np.ndarray]
) -> None:
    """An upload is preprocessed in the browser (upload.js, preprocess.js): its correction
    carries those 784 numbers, as a drawing's does."""
    desktop, _ = site
    page = desktop.page
    page.route(
        "**/api/feedback",
        lambda route: route.fulfill(status=202, content_type="application/json", body="{}"),
    )
    index = int(np.flatnonzero(mnist["y_test"] == 3)[0])
    with page.expect_response("**/api/predict") as predicted:
        page.set_input_files(
            "#upload-input",
            files=[
                {
                    "name": "three.png",
                    "mimeType": "image/png",
                    "buffer": picture_of_digit(mnist["x_test"][index]),
                }
            ],
        )
    wait_for_answer(page)
    assert predicted.value.json()["prediction"] == 3
    with page.expect_request("**/api/feedback") as corrected:
        digit_button(page, 8).click()
    expect(page.locator("#feedback-status")).to_have_text("Thanks — saved as an 8.")
    sent = json.loads(corrected.value.post_data)
    assert sent["pixels"] == json.loads(predicted.value.request.post_data)["pixels"]
    assert (sent["predicted"], sent["label"]) == (3, 8)
    assert desktop.console_errors == []


# --- the models page ---------------------------------------------------------------------------


def drop_invalid_model(azurite: str, base_url: str) -> str:
    """Drop a file that is no ONNX model into models/incoming/, and deliver its BlobCreated
    event to the promoter's Event Grid trigger, as the Event Grid stand-in of `make run` does."""
    version = f"not-a-model-{uuid.uuid4().hex[:8]}"
    name = f"incoming/{version}.onnx"
    with BlobServiceClient.from_connection_string(azurite) as service:
        container = service.get_container_client("models")
        with contextlib.suppress(ResourceExistsError):  # the app may have made it
            container.create_container()
        container.upload_blob(name, b"this is not an ONNX model")
    event = blob_created("models", name)
    webhook = webhook_url(base_url.removesuffix("/api"), "promote_model")
    request = urllib.request.Request(
        webhook,
        data=json.dumps([event]).encode(),
        headers={"Content-Type": "application/json", "aeg-event-type": "Notification"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=DECISION_TIMEOUT_S) as response:
        assert response.status == 202
    return version


def wait_for_decision(base_url: str, version: str) -> dict:
    deadline = time.monotonic() + DECISION_TIMEOUT_S
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as response:
            listing = json.load(response)
        for decision in listing["decisions"]:
            if decision["version"] == version:
                return decision
        time.sleep(1)
    pytest.fail(f"/api/models did not list a decision on {version} in {DECISION_TIMEOUT_S} s")


def test_the_models_page_shows_a_refused_drop_and_its_reason(
    browser: Browser,  # noqa: F811
    site_url: str,
    base_url: str,
    azurite: str,
) -> None:
    version = drop_invalid_model(azurite, base_url)
    decision = wait_for_decision(base_url, version)
    assert decision["decision"] == "rejected"

    context = browser.new_context(**DESKTOP)
    home = open_site(context, site_url)
    page = home.page
    page.get_by_role("link", name="Models").click()
    page.wait_for_url("**/models")
    expect(page).to_have_title("Models · Digit recognizer")
    expect(page.locator("#listing")).not_to_have_attribute("aria-busy", "true")

    with urllib.request.urlopen(f"{base_url}/health", timeout=10) as response:
        served = json.load(response)["model"]
    expect(page.locator("#served-version")).to_have_text(served["version"])
    expect(page.locator("#freshness")).to_contain_text("As of ")
    refused = page.locator("#decisions li", has_text=version)
    expect(refused).to_have_count(1)
    expect(refused).to_have_attribute("data-refused", "")
    expect(refused).to_contain_text("Refused")
    expect(refused.locator(".entry-detail")).to_have_text(
        f"Failed the {decision['check']} check: {decision['reason']}"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "models.png", full_page=True)
    assert home.console_errors == []  # nothing the CSP refused, no script errors

    # The page answers at /models itself, with the site's headers (CSP included).
    with urllib.request.urlopen(site_url + "models", timeout=10) as response:
        assert "Models · Digit recognizer" in response.read().decode()
        csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp
    assert "style-src 'self';" in csp
    context.close()
