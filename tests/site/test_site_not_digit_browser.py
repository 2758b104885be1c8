"""Drawings that are no digit (issue #25), in headless Chromium against the local host and Azurite
that `make run` starts: the site's answer when the model flags a drawing ("That doesn't look like
a digit", the closest digit and the probabilities muted, no "% sure" figure, the same words for a
screen reader), "Not a digit" beside the ten digits under a digit's answer, and "It is a digit"
then a digit under a flagged answer, each correction stored in the feedback container
(docs/contracts.md sections 2a and 4).

The first test draws the issue's own examples, a capital A and a smiley, and the served model
itself flags them. The others pin what the page does with a flagged answer, whatever a model
flags: Playwright's `page.route` answers /api/predict with a JSON answer carrying
`"is_digit": false` (what the API sends, contracts.md section 4). The corrections themselves go
to the real /api/feedback and are read back from Azurite.
Screenshot: test-artifacts/site-not-digit.png.

Chromium comes from Debian (`apt-get install chromium`), never from `playwright install`.
"""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
from playwright.sync_api import Page, Request, Route, expect

from tests.site.test_site_browser import (
    ARTIFACTS,
    QUIET_MS,
    SEVEN,
    SitePage,
    browser,  # noqa: F401 - a fixture
    draw_with_mouse,
    served_model_version,
    wait_for_answer,
)
from tests.site.test_site_feedback_browser import (
    GROUP_NAME,
    digit_button,
    feedback_group,
    site,  # noqa: F401 - a fixture
    stored_item,
)

# A smiley: a face, two eyes and a mouth, strokes in 0..1 of the pad.
SMILEY = [
    [(0.5, 0.12), (0.8, 0.25), (0.88, 0.5), (0.8, 0.75), (0.5, 0.88)],
    [(0.5, 0.88), (0.2, 0.75), (0.12, 0.5), (0.2, 0.25), (0.5, 0.12)],
    [(0.36, 0.36), (0.38, 0.4)],
    [(0.62, 0.36), (0.64, 0.4)],
    [(0.32, 0.6), (0.5, 0.7), (0.68, 0.6)],
]
NOT_A_DIGIT = "That doesn't look like a digit"
FLAGGED_GROUP = "Is it a digit after all?"
WHICH_DIGIT_GROUP = "Which digit is it?"
MUTED = "rgb(93, 100, 121)"  # site.css --muted
ACCENT = "rgb(67, 56, 202)"  # site.css --accent


def contract_id(pixels: list, mark: str) -> str:
    """docs/contracts.md section 2a in its own words: sha256 of the 784 pixel bytes, then the
    label as one ASCII character, "n" for not_digit."""
    content = np.asarray(pixels, dtype=np.uint8).tobytes() + mark.encode("ascii")
    return hashlib.sha256(content).hexdigest()


def flag_every_drawing(page: Page, version: str) -> list[Request]:
    """Answer /api/predict in the browser as the API answers a drawing its model flags: the
    closest digit 0 at 100 %, `"is_digit": false` (the issue's smiley, which used to read "It's a
    0, 100.0 % sure"). Returns the requests so answered."""
    answered: list[Request] = []
    flagged = {
        "prediction": 0,
        "is_digit": False,
        "confidence": 1.0,
        "probabilities": [1.0] + [0.0] * 9,
        "model_version": version,
    }

    def fulfil(route: Route) -> None:
        answered.append(route.request)
        route.fulfill(
            status=200,
            content_type="application/json",
            headers={"X-Model-Version": version},
            body=json.dumps(flagged),
        )

    page.route("**/api/predict", fulfil)
    return answered


def colour(page: Page, selector: str) -> str:
    return page.eval_on_selector(selector, "element => getComputedStyle(element).color")


def background(page: Page, selector: str) -> str:
    return page.eval_on_selector(selector, "element => getComputedStyle(element).backgroundColor")


# A capital A drawn with the mouse, as a person draws it: the "It's a 4, 99.9 % sure".
CAPITAL_A = [[(0.2, 0.85), (0.5, 0.12), (0.8, 0.85)], [(0.32, 0.58), (0.68, 0.58)]]


def test_the_served_model_says_a_letter_and_a_smiley_are_no_digit(
    site: tuple[SitePage, list[Request]],  # noqa: F811
) -> None:
    desktop, _ = site
    page = desktop.page
    for strokes in (CAPITAL_A, SMILEY):
        draw_with_mouse(page, strokes)
        wait_for_answer(page)
        expect(page.locator("#result")).to_have_attribute("data-verdict", "not-digit")
        expect(page.locator("#confidence")).to_have_text(NOT_A_DIGIT)
        assert "sure" not in page.locator("#result").inner_text().lower()
        page.click("#clear")
    draw_with_mouse(page, SEVEN)
    wait_for_answer(page)
    expect(page.locator("#result")).to_have_attribute("data-verdict", "digit")
    assert desktop.console_errors == []


def test_a_flagged_drawing_says_so_with_the_closest_digit_muted_and_no_figure(
    site: tuple[SitePage, list[Request]],  # noqa: F811
    base_url: str,
) -> None:
    desktop, _ = site
    page = desktop.page
    answered = flag_every_drawing(page, served_model_version(base_url))
    draw_with_mouse(page, SMILEY)
    wait_for_answer(page)
    assert len(answered) == 1

    result = page.locator("#result")
    expect(result).to_have_attribute("data-verdict", "not-digit")
    expect(page.locator("#confidence")).to_have_text(NOT_A_DIGIT)
    expect(page.locator("#alternative")).to_have_text("Closest digit: 0")
    expect(page.locator("#digit")).to_have_text("0")  # the closest digit, muted
    assert colour(page, "#digit") == MUTED
    expect(page.locator(".meter")).to_be_hidden()  # no meter of how sure
    # No "% sure" anywhere on the card, although the model gave 100 %.
    shown = result.inner_text()
    assert "sure" not in shown.lower()
    assert not re.search(r"\d\s*%\s*sure", shown)

    # The probabilities are still there, muted: the closest digit's bar is not the accent's.
    bars = page.get_by_role("list", name="Probability of each digit, if it were one")
    expect(bars).to_be_visible()
    expect(bars.get_by_role("listitem")).to_have_count(10)
    expect(page.locator(".bars li[data-top]")).to_contain_text("0")
    expect(page.locator(".bars li[data-top] .bar-value")).to_have_text("100.0 %")
    assert background(page, ".bars li[data-top] .bar-fill") != ACCENT
    assert colour(page, ".bars li[data-top] .bar-value") == MUTED

    # What a screen reader hears at once (the polite live region), and reads on the card.
    announcement = page.locator("#announcement")
    expect(announcement).to_have_attribute("aria-live", "polite")
    expect(announcement).to_have_text(f"{NOT_A_DIGIT}. The closest digit is 0.")
    expect(page.locator(".verdict")).to_match_aria_snapshot(
        f"""
        - paragraph: {NOT_A_DIGIT}
        - paragraph: "Closest digit: 0"
        """
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "site-not-digit.png", full_page=True)

    # A digit's answer afterwards is shown as before: the figure and the meter are back.
    page.unroute("**/api/predict")
    page.click("#clear")
    draw_with_mouse(page, SEVEN)
    wait_for_answer(page)
    expect(result).to_have_attribute("data-verdict", "digit")
    expect(page.locator("#confidence")).to_have_text(re.compile(r"^\d+\.\d % sure$"))
    expect(page.locator(".meter")).to_be_visible()
    expect(announcement).to_have_text(re.compile(r"^It's a 7, \d+\.\d % sure\.$"))
    expect(page.get_by_role("list", name="Probability of each digit", exact=True)).to_be_visible()
    assert colour(page, "#digit") == ACCENT
    assert desktop.console_errors == []


def test_not_a_digit_beside_the_digits_is_sent_and_stored(
    site: tuple[SitePage, list[Request]],  # noqa: F811
    azurite: str,
) -> None:
    desktop, sent = site
    page = desktop.page
    with page.expect_response("**/api/predict") as predicted:
        draw_with_mouse(page, SEVEN)
    wait_for_answer(page)
    answer = predicted.value.json()
    assert answer["prediction"] == 7
    assert answer.get("is_digit", True) is True
    pixels_sent = json.loads(predicted.value.request.post_data)["pixels"]

    group = feedback_group(page)
    expect(group).to_be_visible()
    not_digit = group.get_by_role("button", name="Not a digit", exact=True)
    expect(not_digit).to_be_visible()
    expect(not_digit).to_have_attribute("aria-disabled", "false")
    expect(group.get_by_role("button", name="It is a digit")).to_have_count(0)  # hidden
    # Beside the digits: after 9, in reading and Tab order.
    names = [b.inner_text().strip() for b in group.get_by_role("button").all()]
    assert names == [str(d) for d in range(10)] + ["Not a digit"]

    with page.expect_response("**/api/feedback") as stored:
        not_digit.click()
    assert stored.value.status == 202
    expect(page.locator("#feedback-status")).to_have_text("Thanks — saved as not a digit.")
    expect(not_digit).to_have_attribute("aria-pressed", "true")
    body = json.loads(stored.value.request.post_data)
    assert body == {
        "pixels": pixels_sent,
        "predicted": 7,
        "label": "not_digit",
        "model_version": answer["model_version"],
    }
    item = stored.value.json()["item"]
    saved = stored_item(azurite, item)
    assert (saved["predicted"], saved["label"]) == (7, "not_digit")
    assert item == contract_id(saved["pixels"], "n")

    # One correction per answer: the digits and "Not a digit" take no more picks.
    expect(not_digit).to_have_attribute("aria-disabled", "true")
    expect(digit_button(page, 3)).to_have_attribute("aria-disabled", "true")
    not_digit.click(force=True)
    page.wait_for_timeout(QUIET_MS)
    assert len(sent) == 1
    assert desktop.console_errors == []


def test_under_a_flagged_answer_it_is_a_digit_then_which_is_sent_and_stored(
    site: tuple[SitePage, list[Request]],  # noqa: F811
    base_url: str,
    azurite: str,
) -> None:
    desktop, sent = site
    page = desktop.page
    # Focus on "Not a digit" under a digit's answer, then a flagged answer hides that button:
    # focus goes to the status beside the buttons, not to the page's start.
    draw_with_mouse(page, SEVEN)
    wait_for_answer(page)
    feedback_group(page).get_by_role("button", name="Not a digit").focus()
    answered = flag_every_drawing(page, served_model_version(base_url))
    with page.expect_request("**/api/predict"):
        draw_with_mouse(page, [[(0.1, 0.9), (0.2, 0.95)]])  # a scribble more
    wait_for_answer(page)
    assert len(answered) == 1
    assert page.evaluate("document.activeElement.id") == "feedback-status"

    group = page.get_by_role("group", name=FLAGGED_GROUP)
    expect(group).to_be_visible()
    expect(page.get_by_role("group", name=GROUP_NAME)).to_have_count(0)
    expect(group.get_by_role("button", name="Not a digit")).to_have_count(0)  # the model's
    expect(group.get_by_role("button", name="It is a digit")).to_be_visible()
    it_is = page.get_by_role("button", name="It is a digit")  # the group's name changes
    expect(it_is).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#feedback-digits")).to_be_hidden()
    expect(group.get_by_role("button", name="4", exact=True)).to_have_count(0)
    page.wait_for_timeout(QUIET_MS)
    assert sent == []  # nothing is sent unasked

    # From the keyboard: Enter opens the digits, which follow the button in Tab order.
    it_is.focus()
    page.keyboard.press("Enter")
    expect(it_is).to_have_attribute("aria-expanded", "true")
    group = page.get_by_role("group", name=WHICH_DIGIT_GROUP)
    expect(group).to_be_visible()
    for digit in range(10):  # every digit is a right answer here, the closest one too
        button = group.get_by_role("button", name=str(digit), exact=True)
        expect(button).to_be_enabled()
        expect(button).to_have_attribute("aria-disabled", "false")
    assert sent == []  # opening the digits sends nothing
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "0"

    with page.expect_response("**/api/feedback") as stored:
        group.get_by_role("button", name="6", exact=True).click()
    assert stored.value.status == 202
    expect(page.locator("#feedback-status")).to_have_text("Thanks — saved as a 6.")
    body = json.loads(stored.value.request.post_data)
    assert (body["predicted"], body["label"]) == ("not_digit", 6)
    assert set(body) == {"pixels", "predicted", "label", "model_version"}
    item = stored.value.json()["item"]
    saved = stored_item(azurite, item)
    assert (saved["predicted"], saved["label"]) == ("not_digit", 6)
    assert item == contract_id(saved["pixels"], "6")
    assert np.abs(np.asarray(saved["pixels"]).ravel() - np.asarray(body["pixels"])).max() <= 0.5

    expect(it_is).to_have_attribute("aria-disabled", "true")
    group.get_by_role("button", name="2", exact=True).click(force=True)
    page.wait_for_timeout(QUIET_MS)
    assert len(sent) == 1
    assert desktop.console_errors == []
