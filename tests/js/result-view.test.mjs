// What the result card says about an answer (static-web/js/result-view.js's verdictOf) and how
// the API's answer is read (api-client.js): a sure digit, an unsure one, and a drawing the model
// flagged as no digit, which gets no "% sure" figure at all. `node --test tests/js/`.

import assert from "node:assert/strict";
import { afterEach, mock, test } from "node:test";

import { requestPrediction } from "../../static-web/js/api-client.js";
import {
  BARS_LABEL,
  BARS_LABEL_NOT_A_DIGIT,
  NOT_A_DIGIT,
  verdictOf,
} from "../../static-web/js/result-view.js";

afterEach(() => mock.restoreAll());

const onehot = (digit) => Array.from({ length: 10 }, (_, d) => (d === digit ? 1 : 0));

test("a sure digit: the figure, the runner-up, and the same words for a screen reader", () => {
  const probabilities = [0, 0, 0.02, 0, 0, 0, 0, 0.973, 0.007, 0];
  assert.deepEqual(verdictOf({ digit: 7, isDigit: true, confidence: 0.973, probabilities }), {
    kind: "digit",
    digit: "7",
    confidence: "97.3 % sure",
    alternative: "Next best: 2 (2.0 %)",
    meter: 0.973,
    barsLabel: BARS_LABEL,
    announcement: "It's a 7, 97.3 % sure.",
  });
});

test("an unsure digit names both candidates", () => {
  const probabilities = [0, 0, 0, 0.35, 0, 0.6, 0, 0, 0.05, 0];
  const verdict = verdictOf({ digit: 5, confidence: 0.6, probabilities }); // no isDigit: a digit
  assert.equal(verdict.kind, "unsure");
  assert.equal(verdict.confidence, "Not sure");
  assert.equal(verdict.alternative, "Maybe 5 (60.0 %) or 3 (35.0 %).");
  assert.equal(verdict.announcement, "Not sure. Maybe 5 (60.0 %) or 3 (35.0 %).");
});

test("a flagged drawing: the message, the closest digit, never a '% sure' figure", () => {
  for (const confidence of [1, 0.999, 0.5]) {
    const verdict = verdictOf({
      digit: 0,
      isDigit: false,
      confidence,
      probabilities: onehot(0),
    });
    assert.deepEqual(verdict, {
      kind: "not-digit",
      digit: "0",
      confidence: "That doesn't look like a digit",
      alternative: "Closest digit: 0",
      meter: null,
      barsLabel: "Probability of each digit, if it were one",
      announcement: "That doesn't look like a digit. The closest digit is 0.",
    });
    for (const text of [verdict.confidence, verdict.alternative, verdict.announcement]) {
      assert.doesNotMatch(text, /%|sure/);
    }
  }
  assert.equal(NOT_A_DIGIT, "That doesn't look like a digit");
  assert.equal(BARS_LABEL_NOT_A_DIGIT, "Probability of each digit, if it were one");
});

function answering(body) {
  return mock.method(globalThis, "fetch", async () => Response.json(body));
}

test("the API's is_digit is read; a missing one is a digit", async () => {
  const common = { prediction: 4, confidence: 0.9, probabilities: onehot(4), model_version: "v1" };
  answering({ ...common, is_digit: false });
  let answer = await requestPrediction("/api", new Float32Array(784));
  assert.equal(answer.isDigit, false);
  assert.equal(answer.digit, 4);
  mock.restoreAll();
  answering({ ...common, is_digit: true });
  answer = await requestPrediction("/api", new Float32Array(784));
  assert.equal(answer.isDigit, true);
  mock.restoreAll();
  answering(common);
  answer = await requestPrediction("/api", new Float32Array(784));
  assert.equal(answer.isDigit, true);
  assert.equal(answer.modelVersion, "v1");
});
