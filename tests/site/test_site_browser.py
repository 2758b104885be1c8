"""The drawing site in headless Chromium, against the local host that `make run` starts: digits
drawn with the mouse, by touch on a phone and from the keyboard, undo and clear, uploads, the API
failing, and stale answers. The site is served by the `base_url` fixture's host at / and calls
its /api. A screenshot after a prediction is kept as test-artifacts/site.png.

Chromium comes from Debian (`apt-get install chromium`), never from `playwright install`.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

from tests.helpers import picture_of_digit
from tests.stack import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"viewport": {"width": 1200, "height": 900}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
QUIET_MS = 700  # longer than the site's debounce (250 ms) plus a local round trip

# Digits as strokes, each a polyline in 0..1 of the drawing pad.
SEVEN = [[(0.28, 0.22), (0.72, 0.22), (0.42, 0.82)]]
SEVEN_BAR, SEVEN_STEM = [SEVEN[0][:2]], [SEVEN[0][1:]]
ONE = [[(0.5, 0.18), (0.5, 0.84)]]
FOUR = [[(0.55, 0.15), (0.25, 0.6), (0.75, 0.6)], [(0.58, 0.38), (0.58, 0.88)]]


@dataclass
class SitePage:
    """A page of the site, with what went wrong in its console."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    predict_requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: apt-get install chromium (or CHROMIUM_PATH)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_site(context: BrowserContext, site_url: str) -> SitePage:
    site = SitePage(context.new_page())

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            site.console_errors.append(message.text)

    def on_request(request: Request) -> None:
        if request.url.endswith("/api/predict"):
            site.predict_requests.append(request.url)

    site.page.on("console", on_console)
    site.page.on("pageerror", lambda error: site.console_errors.append(str(error)))
    site.page.on("request", on_request)
    site.page.goto(site_url)
    site.page.wait_for_selector("#pad[data-empty]")  # the site's script has started
    return site


@pytest.fixture
def desktop(browser: Browser, site_url: str) -> Iterator[SitePage]:
    context = browser.new_context(**DESKTOP)
    yield open_site(context, site_url)
    context.close()


@pytest.fixture
def phone(browser: Browser, site_url: str) -> Iterator[SitePage]:
    context = browser.new_context(**PHONE)
    yield open_site(context, site_url)
    context.close()


def pad_point(page: Page, x: float, y: float) -> tuple[float, float]:
    """A point given in 0..1 of the pad, in the page's CSS pixels."""
    box = page.locator("#pad-canvas").bounding_box()
    return box["x"] + x * box["width"], box["y"] + y * box["height"]


def draw_with_mouse(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    for stroke in strokes:
        page.mouse.move(*pad_point(page, *stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*pad_point(page, *point), steps=12)
        page.mouse.up()


def draw_with_touch(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    """Real touch input (CDP Input.dispatchTouchEvent): touchstart, moves, touchend."""
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        touch_points = [{"x": x, "y": y} for x, y in points]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

    for stroke in strokes:
        points = [pad_point(page, *point) for point in stroke]
        touch("touchStart", points[:1])
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            for t in np.linspace(0, 1, 12)[1:]:
                touch("touchMove", [(x0 + t * (x1 - x0), y0 + t * (y1 - y0))])
        touch("touchEnd", [])
    cdp.detach()


def wait_for_answer(page: Page) -> None:
    page.wait_for_selector("#result[data-state='result']:not([aria-busy])")


def wait_for_error(page: Page) -> str:
    page.wait_for_selector("#result[data-state='error']")
    return page.inner_text("#error-message")


def ink_on_pad(page: Page) -> int:
    """How many canvas pixels carry ink (alpha > 0)."""
    return page.evaluate(
        """() => {
          const canvas = document.querySelector('#pad-canvas');
          const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
          let inked = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked += 1;
          return inked;
        }"""
    )


# The canvas's alpha at a point given in 0..1 of the pad, read from its backing store.
ALPHA_AT = """([x, y]) => {
  const canvas = document.querySelector('#pad-canvas');
  const [column, row] = [Math.round(x * canvas.width), Math.round(y * canvas.height)];
  return canvas.getContext('2d').getImageData(column, row, 1, 1).data[3];
}"""


def shown_probabilities(page: Page) -> list[float]:
    return [float(text.rstrip(" %")) / 100 for text in page.locator(".bar-value").all_inner_texts()]


def served_model_version(base_url: str) -> str:
    with urllib.request.urlopen(f"{base_url}/health", timeout=10) as response:
        return json.load(response)["model"]["version"]


def test_a_digit_drawn_with_the_mouse_is_read_by_the_api(desktop: SitePage, base_url: str) -> None:
    page = desktop.page
    assert page.get_attribute("#result", "data-state") == "empty"
    with page.expect_response("**/api/predict") as predicted:
        draw_with_mouse(page, SEVEN)
    wait_for_answer(page)
    sent = json.loads(predicted.value.request.post_data)
    answer = predicted.value.json()
    assert len(sent["pixels"]) == 784
    assert all(0 <= value <= 255 for value in sent["pixels"])
    assert answer["prediction"] == 7
    assert page.inner_text("#digit") == "7"
    assert re.fullmatch(r"\d+\.\d % sure", page.inner_text("#confidence"))
    shown = shown_probabilities(page)
    assert len(shown) == 10
    assert shown == pytest.approx(answer["probabilities"], abs=0.0006)
    assert page.locator(".bars li[data-top]").inner_text().startswith("7")
    assert page.inner_text("#model-version") == served_model_version(base_url)
    assert re.fullmatch(r"\d+ ms", page.inner_text("#round-trip"))
    assert page.inner_text("#announcement").startswith("It's a 7")
    # The 28x28 preview is what was sent: its brightest pixel is the largest value sent.
    brightest = page.evaluate(
        """() => Math.max(...document.querySelector('#model-input').getContext('2d')
              .getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))"""
    )
    assert brightest == round(max(sent["pixels"]))
    page.wait_for_timeout(QUIET_MS)
    assert len(desktop.predict_requests) == 1  # one stroke, one request
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "site.png", full_page=True)
    assert desktop.console_errors == []


def test_a_digit_drawn_by_touch_on_a_phone(phone: SitePage) -> None:
    page = phone.page
    canvas = page.evaluate(
        """() => { const c = document.querySelector('#pad-canvas');
                   return { width: c.width, cssWidth: c.getBoundingClientRect().width }; }"""
    )
    # One backing-store pixel per device pixel (device scale 2), not per CSS pixel.
    assert canvas["width"] == round(canvas["cssWidth"] * 2)
    draw_with_touch(page, FOUR)
    wait_for_answer(page)
    assert page.inner_text("#digit") == "4"
    assert page.evaluate("window.scrollY") == 0  # touch-action: none: drawing never scrolls
    # The ink lies under the finger: CSS coordinates map to device pixels through the scaling.
    stem_middle = (FOUR[1][0][0], (FOUR[1][0][1] + FOUR[1][1][1]) / 2)
    assert page.evaluate(ALPHA_AT, stem_middle) > 200
    assert page.evaluate(ALPHA_AT, (0.9, 0.1)) == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "site-phone.png", full_page=True)
    assert phone.console_errors == []


def test_undo_and_clear(desktop: SitePage) -> None:
    page = desktop.page
    draw_with_mouse(page, SEVEN_BAR)
    wait_for_answer(page)
    ink_after_bar = ink_on_pad(page)
    draw_with_mouse(page, SEVEN_STEM)
    expect(page.locator("#digit")).to_have_text("7")
    assert ink_on_pad(page) > ink_after_bar

    with page.expect_request("**/api/predict"):
        page.click("#undo")
    assert ink_on_pad(page) == ink_after_bar
    wait_for_answer(page)

    requests_before = len(desktop.predict_requests)
    page.keyboard.press("Control+z")
    assert ink_on_pad(page) == 0
    page.wait_for_selector("#result[data-state='empty']")
    page.wait_for_timeout(QUIET_MS)
    assert len(desktop.predict_requests) == requests_before  # nothing drawn, nothing sent
    assert page.get_attribute("#undo", "aria-disabled") == "true"

    draw_with_mouse(page, ONE)
    wait_for_answer(page)
    requests_before = len(desktop.predict_requests)
    page.click("#clear")
    assert ink_on_pad(page) == 0
    page.wait_for_selector("#result[data-state='empty']")
    page.wait_for_timeout(QUIET_MS)
    assert len(desktop.predict_requests) == requests_before
    assert desktop.console_errors == []


def draw_one_with_the_keyboard(page: Page) -> None:
    """Tab to the pad, draw a "1" with the keyboard pen and wait for its answer. The pen starts
    in the middle: up a third, pen down, down two thirds, pen up."""
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "pad-canvas"
    for _ in range(13):
        page.keyboard.press("ArrowUp")
    page.keyboard.press("Space")
    for _ in range(26):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    wait_for_answer(page)
    assert page.inner_text("#digit") == "1"


def test_everything_works_from_the_keyboard(desktop: SitePage) -> None:
    page = desktop.page
    draw_one_with_the_keyboard(page)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "undo"
    page.keyboard.press("Enter")
    page.wait_for_selector("#result[data-state='empty']")
    assert ink_on_pad(page) == 0
    assert desktop.console_errors == []


def test_an_uploaded_picture_is_read_like_a_drawing(
    desktop: SitePage, mnist: dict[str, np.ndarray]
) -> None:
    page = desktop.page
    index = int(np.flatnonzero(mnist["y_test"] == 3)[0])
    picture = picture_of_digit(mnist["x_test"][index])  # dark on light, large and off-centre
    draw_with_mouse(page, ONE)
    wait_for_answer(page)
    page.set_input_files(
        "#upload-input", files=[{"name": "three.png", "mimeType": "image/png", "buffer": picture}]
    )
    expect(page.locator("#digit")).to_have_text("3")
    wait_for_answer(page)
    assert page.is_visible("#pad-picture")
    assert ink_on_pad(page) == 0  # the picture replaced the drawing
    assert "three.png" in page.inner_text("#pad-caption")
    assert desktop.console_errors == []


def drop_file(page: Page, name: str, mime_type: str, content: bytes) -> None:
    """Drag a file over the page and drop it on the pad, as from a file manager."""
    page.evaluate(
        """([name, type, encoded]) => {
          const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, { type }));
          const pad = document.querySelector('#pad');
          for (const kind of ['dragenter', 'dragover', 'drop']) {
            pad.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true,
                                                    dataTransfer: transfer }));
          }
        }""",
        [name, mime_type, base64.b64encode(content).decode()],
    )


def test_a_dropped_picture_is_read_and_a_dropped_non_picture_refused(
    desktop: SitePage, mnist: dict[str, np.ndarray]
) -> None:
    page = desktop.page
    index = int(np.flatnonzero(mnist["y_test"] == 2)[0])
    drop_file(page, "two.png", "image/png", picture_of_digit(mnist["x_test"][index], inverted=True))
    wait_for_answer(page)
    assert page.inner_text("#digit") == "2"
    assert not page.get_attribute("#pad", "data-dropping")

    drop_file(page, "notes.txt", "text/plain", b"not a picture")
    assert "not a picture" in wait_for_error(page)
    assert not page.is_visible("#retry")
    assert desktop.console_errors == []


def abort(route: Route) -> None:
    route.abort()


def answer_400(route: Route) -> None:
    problem = {"type": "about:blank", "title": "Bad Request", "status": 400}
    problem["detail"] = "pixels must hold 784 numbers"
    route.fulfill(status=400, content_type="application/problem+json", body=json.dumps(problem))


def answer_500(route: Route) -> None:
    route.fulfill(status=500, content_type="application/problem+json", body="{}")


@pytest.mark.parametrize(
    ("failure", "expected_message"),
    [
        (abort, "cannot be reached"),
        (answer_400, "refused the request (400): pixels must hold 784 numbers"),
        (answer_500, "had a problem (500)"),
    ],
)
def test_api_failures_show_a_message_and_keep_the_drawing(
    desktop: SitePage, failure, expected_message: str
) -> None:
    page = desktop.page
    page.route("**/api/predict", failure)
    draw_with_mouse(page, SEVEN)
    assert expected_message in wait_for_error(page)
    ink = ink_on_pad(page)
    assert ink > 0
    page.unroute("**/api/predict")
    page.click("#retry")
    wait_for_answer(page)
    assert page.inner_text("#digit") == "7"
    assert ink_on_pad(page) == ink  # the drawing stayed throughout


def test_a_late_answer_to_an_older_drawing_is_dropped(desktop: SitePage) -> None:
    page = desktop.page
    held: list[Route] = []

    def hold_the_first(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/api/predict", hold_the_first)
    draw_with_mouse(page, SEVEN_BAR)
    page.wait_for_selector("#result[aria-busy='true']")
    draw_with_mouse(page, SEVEN_STEM)
    wait_for_answer(page)
    assert page.inner_text("#digit") == "7"
    stale = {"prediction": 3, "confidence": 1.0, "probabilities": [0, 0, 0, 1] + [0] * 6}
    with page.expect_event("requestfinished"):
        held[0].fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps(stale | {"model_version": "x"}),
        )
    page.wait_for_timeout(200)
    assert page.inner_text("#digit") == "7"
    assert desktop.console_errors == []
