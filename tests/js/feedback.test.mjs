// Corrections sent from the site (static-web/js/feedback.js, correction.js and feedback-view.js):
// the request body, the messages for each failure, and the offer's rules: nothing sent until an
// answer is picked, one correction per answer, outcomes only for the answer on screen; "Not a
// digit" under a digit's answer, and "It is a digit" then a digit under an answer that said
// "not a digit". `node --test tests/js/`.

import assert from "node:assert/strict";
import { afterEach, mock, test } from "node:test";

import { AnswerCorrection, withArticle } from "../../static-web/js/correction.js";
import {
  FeedbackError,
  NOT_DIGIT,
  failureMessage,
  feedbackBody,
  sendCorrection,
} from "../../static-web/js/feedback.js";
import {
  TITLE_DIGIT,
  TITLE_NOT_DIGIT,
  TITLE_WHICH_DIGIT,
  feedbackTitle,
} from "../../static-web/js/feedback-view.js";

const PIXELS = Float32Array.from({ length: 784 }, (_, i) => (i % 97 === 0 ? 127.4 : 0));
const ANSWER = { digit: 5, modelVersion: "mnist-cnn-1.2.0" };
// The model's "that doesn't look like a digit", its closest digit 4 (is_digit false).
const FLAGGED = { digit: 4, isDigit: false, modelVersion: "mnist-cnn-1.2.0" };

afterEach(() => mock.restoreAll());

/** A fake /feedback whose answers the test releases by hand. */
function controllableSend() {
  const calls = [];
  const send = (correction) =>
    new Promise((resolve, reject) => calls.push({ correction, resolve, reject }));
  return { calls, send };
}

function recordingCorrection(send) {
  const statuses = [];
  const correction = new AnswerCorrection(send, (status) => statuses.push(status));
  return { correction, statuses, last: () => statuses.at(-1) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

// --- the request -----------------------------------------------------------------------------

test("the body carries the pixels exactly as /predict got them, and the four fields only", () => {
  const body = feedbackBody({ pixels: PIXELS, predicted: 5, label: 3, modelVersion: "v1" });
  assert.deepEqual(Object.keys(body).sort(), ["label", "model_version", "pixels", "predicted"]);
  assert.equal(JSON.stringify(body.pixels), JSON.stringify(Array.from(PIXELS)));
  assert.deepEqual([body.predicted, body.label, body.model_version], [5, 3, "v1"]);
});

test("sendCorrection posts JSON to {apiBase}/feedback and returns the item id", async () => {
  const fetch = mock.method(globalThis, "fetch", async () =>
    Response.json({ item: "ab".repeat(32) }, { status: 202 }),
  );
  const item = await sendCorrection("/api", {
    pixels: PIXELS,
    predicted: 5,
    label: 3,
    modelVersion: "v1",
  });
  assert.equal(item, "ab".repeat(32));
  const [url, init] = fetch.mock.calls[0].arguments;
  assert.equal(url, "/api/feedback");
  assert.equal(init.method, "POST");
  assert.equal(init.headers["Content-Type"], "application/json");
  assert.deepEqual(JSON.parse(init.body), {
    pixels: Array.from(PIXELS),
    predicted: 5,
    label: 3,
    model_version: "v1",
  });
});

function problem(status, detail, headers = {}) {
  return new Response(JSON.stringify({ type: "about:blank", title: "x", status, detail }), {
    status,
    headers: { "Content-Type": "application/problem+json", ...headers },
  });
}

test("a 429 says the service's detail and to try again later", async () => {
  mock.method(globalThis, "fetch", async () =>
    problem(429, "too many corrections from one client; at most 10 a minute", {
      "Retry-After": "6",
    }),
  );
  const correction = { pixels: PIXELS, predicted: 5, label: 3, modelVersion: "v1" };
  await assert.rejects(sendCorrection("/api", correction), (error) => {
    assert.ok(error instanceof FeedbackError);
    assert.equal(
      error.message,
      "Not saved: too many corrections from one client; at most 10 a minute. " +
        "Try again later (in 6 seconds).",
    );
    return true;
  });
});

test("failure messages for each kind of refusal", () => {
  const retryAfter = (value) => new Headers({ "Retry-After": value });
  assert.equal(
    failureMessage(429, "", new Headers()),
    "Not saved: too many corrections were sent from here. Try again later.",
  );
  assert.equal(
    failureMessage(429, "slow down.", retryAfter("1")),
    "Not saved: slow down. Try again later (in 1 second).",
  );
  assert.equal(
    failureMessage(503, "storage did not take the item; nothing was stored", retryAfter("2")),
    "Not saved: storage did not take the item; nothing was stored. Try again later (in 2 seconds).",
  );
  assert.equal(
    failureMessage(503, "", retryAfter("Wed, 21 Oct 2026 07:28:00 GMT")),
    "Not saved: it cannot be stored now. Try again later.",
  );
  assert.equal(
    failureMessage(400, "label and predicted must differ", new Headers()),
    "Not saved (400): label and predicted must differ.",
  );
  assert.equal(failureMessage(404, "", new Headers()), "Not saved (404).");
  assert.equal(
    failureMessage(500, "ignored", new Headers()),
    "Not saved: the service had a problem (500). Try again in a moment.",
  );
});

test("a 5xx without a problem body and an unreachable service are messages too", async () => {
  const correction = { pixels: PIXELS, predicted: 5, label: 3, modelVersion: "v1" };
  mock.method(globalThis, "fetch", async () => new Response("<html>", { status: 502 }));
  await assert.rejects(sendCorrection("/api", correction), /had a problem \(502\)/);
  mock.restoreAll();
  mock.method(globalThis, "fetch", async () => {
    throw new TypeError("fetch failed");
  });
  await assert.rejects(sendCorrection("/api", correction), /cannot be reached/);
});

test("the confirmation's article", () => {
  assert.equal(withArticle(3), "a 3");
  assert.equal(withArticle(8), "an 8");
  assert.equal(withArticle(0), "a 0");
  assert.equal(withArticle(NOT_DIGIT), "not a digit");
});

test("the body carries not_digit as the API's string, as label and as predicted", () => {
  assert.equal(NOT_DIGIT, "not_digit");
  const body = (predicted, label) =>
    feedbackBody({ pixels: PIXELS, predicted, label, modelVersion: "v1" });
  const said5 = body(5, NOT_DIGIT);
  assert.deepEqual([said5.predicted, said5.label], [5, "not_digit"]);
  const saidNo = body(NOT_DIGIT, 4);
  assert.deepEqual([saidNo.predicted, saidNo.label], ["not_digit", 4]);
  assert.equal(JSON.parse(JSON.stringify(said5)).label, "not_digit");
});

// --- the offer -------------------------------------------------------------------------------

test("an answer opens the offer; nothing is sent until a digit is picked", () => {
  const api = controllableSend();
  const { correction, last } = recordingCorrection(api.send);
  assert.equal(correction.status.state, "none");
  correction.offer(ANSWER, PIXELS);
  assert.deepEqual(last(), {
    state: "open",
    predicted: 5,
    label: null,
    digitsShown: true,
    message: "",
    canChoose: true,
  });
  assert.equal(api.calls.length, 0);
});

test("a pick sends one correction with the answer's pixels and version", async () => {
  const api = controllableSend();
  const { correction, last } = recordingCorrection(api.send);
  correction.offer(ANSWER, PIXELS);
  const sending = correction.choose(3);
  assert.equal(last().state, "sending");
  assert.equal(last().canChoose, false);
  assert.equal(api.calls.length, 1);
  assert.deepEqual(api.calls[0].correction, {
    pixels: PIXELS,
    predicted: 5,
    label: 3,
    modelVersion: "mnist-cnn-1.2.0",
  });
  api.calls[0].resolve("item");
  await sending;
  assert.deepEqual(last(), {
    state: "saved",
    predicted: 5,
    label: 3,
    digitsShown: true,
    message: "Thanks — saved as a 3.",
    canChoose: false,
  });
  await correction.choose(4); // one correction per answer
  await correction.choose(3);
  assert.equal(api.calls.length, 1);
});

test("the model's own digit, and anything that is no digit, is never sent", async () => {
  const api = controllableSend();
  const { correction } = recordingCorrection(api.send);
  correction.offer(ANSWER, PIXELS);
  for (const label of [5, -1, 10, 2.5, "3", null, "Not a digit", "not digit", "n"]) {
    await correction.choose(label);
  }
  assert.equal(api.calls.length, 0);
  assert.equal(correction.status.state, "open");
});

test("a second pick while the first is on its way is ignored", async () => {
  const api = controllableSend();
  const { correction } = recordingCorrection(api.send);
  correction.offer(ANSWER, PIXELS);
  correction.choose(3);
  await correction.choose(4);
  assert.equal(api.calls.length, 1);
});

test("a refused correction says why and may be picked again", async () => {
  const api = controllableSend();
  const { correction, last } = recordingCorrection(api.send);
  correction.offer(ANSWER, PIXELS);
  const first = correction.choose(3);
  api.calls[0].reject(new FeedbackError("Not saved: slow down. Try again later."));
  await first;
  assert.deepEqual(last(), {
    state: "failed",
    predicted: 5,
    label: 3,
    digitsShown: true,
    message: "Not saved: slow down. Try again later.",
    canChoose: true,
  });
  const second = correction.choose(3);
  api.calls[1].resolve("item");
  await second;
  assert.equal(last().state, "saved");
});

test("a new answer resets the offer, and a late outcome for the older one is dropped", async () => {
  const api = controllableSend();
  const { correction, last } = recordingCorrection(api.send);
  correction.offer(ANSWER, PIXELS);
  const older = correction.choose(3);
  correction.pause(); // a newer drawing is on its way
  correction.offer({ digit: 7, modelVersion: "mnist-cnn-1.2.0" }, PIXELS);
  api.calls[0].resolve("item");
  await older;
  await settle();
  assert.deepEqual(last(), {
    state: "open",
    predicted: 7,
    label: null,
    digitsShown: true,
    message: "",
    canChoose: true,
  });
});

test("while a newer answer is on its way, the one on screen takes no picks", async () => {
  const api = controllableSend();
  const { correction, last } = recordingCorrection(api.send);
  correction.offer(ANSWER, PIXELS);
  correction.pause();
  assert.equal(last().canChoose, false);
  assert.equal(last().state, "open");
  await correction.choose(3);
  assert.equal(api.calls.length, 0);
});

test("a correction on its way when the pad is cleared reports nothing", async () => {
  const api = controllableSend();
  const { correction, statuses } = recordingCorrection(api.send);
  correction.offer(ANSWER, PIXELS);
  const sending = correction.choose(3);
  correction.withdraw();
  const seen = statuses.length;
  api.calls[0].resolve("item");
  await sending;
  assert.equal(statuses.length, seen);
  assert.equal(correction.status.state, "none");
});

test("no offer without the 28x28 pixels or with a version the API would refuse", () => {
  const { correction } = recordingCorrection(controllableSend().send);
  for (const [answer, pixels] of [
    [ANSWER, null],
    [ANSWER, new Float32Array(100)],
    [{ digit: 5, modelVersion: "has space" }, PIXELS],
    [{ digit: 5, modelVersion: undefined }, PIXELS],
    [{ digit: 11, modelVersion: "v1" }, PIXELS],
  ]) {
    correction.offer(answer, pixels);
    assert.equal(correction.status.state, "none");
    assert.equal(correction.status.canChoose, false);
  }
});

// --- "Not a digit" and "It is a digit" --------------------------------------------------------

test("under a digit's answer, 'Not a digit' sends label not_digit, once", async () => {
  const api = controllableSend();
  const { correction, last } = recordingCorrection(api.send);
  correction.offer(ANSWER, PIXELS);
  const sending = correction.choose(NOT_DIGIT);
  assert.deepEqual(api.calls[0].correction, {
    pixels: PIXELS,
    predicted: 5,
    label: "not_digit",
    modelVersion: "mnist-cnn-1.2.0",
  });
  api.calls[0].resolve("item");
  await sending;
  assert.deepEqual(last(), {
    state: "saved",
    predicted: 5,
    label: "not_digit",
    digitsShown: true,
    message: "Thanks — saved as not a digit.",
    canChoose: false,
  });
  await correction.choose(3);
  await correction.choose(NOT_DIGIT);
  assert.equal(api.calls.length, 1);
});

test("a missing isDigit is a digit's answer; isDigit true too", () => {
  const { correction } = recordingCorrection(controllableSend().send);
  correction.offer({ ...ANSWER, isDigit: true }, PIXELS);
  assert.equal(correction.status.predicted, 5);
  correction.offer(ANSWER, PIXELS);
  assert.equal(correction.status.predicted, 5);
  assert.equal(correction.status.digitsShown, true);
});

test("under 'not a digit', the digits wait for 'It is a digit'; then a digit is sent", async () => {
  const api = controllableSend();
  const { correction, last } = recordingCorrection(api.send);
  correction.offer(FLAGGED, PIXELS);
  assert.deepEqual(last(), {
    state: "open",
    predicted: "not_digit",
    label: null,
    digitsShown: false,
    message: "",
    canChoose: true,
  });
  await correction.choose(4); // the digits are not offered yet
  await correction.choose(NOT_DIGIT); // the model's own answer
  assert.equal(api.calls.length, 0);

  correction.showDigits();
  assert.equal(last().digitsShown, true);
  assert.equal(last().state, "open");
  assert.equal(api.calls.length, 0); // "It is a digit" alone sends nothing
  const sending = correction.choose(4); // the closest digit is a right answer too
  assert.deepEqual(api.calls[0].correction, {
    pixels: PIXELS,
    predicted: "not_digit",
    label: 4,
    modelVersion: "mnist-cnn-1.2.0",
  });
  api.calls[0].resolve("item");
  await sending;
  assert.equal(last().message, "Thanks — saved as a 4.");
  assert.equal(last().state, "saved");
  assert.equal(last().canChoose, false);
});

test("'It is a digit' folds away again, and does nothing under a digit's answer", () => {
  const { correction, statuses } = recordingCorrection(controllableSend().send);
  correction.offer(FLAGGED, PIXELS);
  correction.showDigits(true);
  correction.showDigits(false);
  assert.equal(correction.status.digitsShown, false);
  correction.showDigits(true);
  correction.pause(); // a newer drawing is on its way: no new picks, no disclosure either
  correction.showDigits(false);
  assert.equal(correction.status.digitsShown, true);
  correction.offer(FLAGGED, PIXELS); // a new answer: folded again
  assert.equal(correction.status.digitsShown, false);

  correction.offer(ANSWER, PIXELS);
  const seen = statuses.length;
  correction.showDigits(false);
  assert.equal(statuses.length, seen);
  assert.equal(correction.status.digitsShown, true);
  correction.withdraw();
  assert.equal(correction.status.digitsShown, false);
});

test("a flagged answer is offered whatever its closest digit, with a version the API takes", () => {
  const { correction } = recordingCorrection(controllableSend().send);
  correction.offer({ ...FLAGGED, digit: undefined }, PIXELS);
  assert.equal(correction.status.state, "open");
  correction.offer({ ...FLAGGED, modelVersion: "has space" }, PIXELS);
  assert.equal(correction.status.state, "none");
  correction.offer(FLAGGED, null);
  assert.equal(correction.status.state, "none");
});

test("the group's title says what to pick", () => {
  assert.equal(TITLE_DIGIT, "Wrong? Pick the right digit");
  assert.equal(feedbackTitle({ predicted: 5, digitsShown: true }), TITLE_DIGIT);
  assert.equal(feedbackTitle({ predicted: null, digitsShown: false }), TITLE_DIGIT);
  assert.equal(feedbackTitle({ predicted: NOT_DIGIT, digitsShown: false }), TITLE_NOT_DIGIT);
  assert.equal(feedbackTitle({ predicted: NOT_DIGIT, digitsShown: true }), TITLE_WHICH_DIGIT);
  assert.equal(TITLE_NOT_DIGIT, "Is it a digit after all?");
  assert.equal(TITLE_WHICH_DIGIT, "Which digit is it?");
});
