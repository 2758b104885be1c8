// When the site asks for predictions and which answers it shows (static-web/js/predictions.js):
// debounced, none for an empty drawing, only the newest answer. `node --test tests/js/`.

import assert from "node:assert/strict";
import { beforeEach, afterEach, mock, test } from "node:test";

import { DEBOUNCE_MS, LatestPrediction } from "../../static-web/js/predictions.js";

const PIXELS_A = new Float32Array([1]);
const PIXELS_B = new Float32Array([2]);

/** A fake API whose answers the test releases by hand, in any order. */
function controllableApi() {
  const calls = [];
  const predict = (pixels) =>
    new Promise((resolve, reject) => calls.push({ pixels, resolve, reject }));
  return { calls, predict };
}

function recordingHandlers() {
  const events = [];
  return {
    events,
    handlers: {
      onPending: (pixels) => events.push(["pending", pixels[0]]),
      onAnswer: (answer, pixels) => events.push(["answer", answer, pixels[0]]),
      onError: (error) => events.push(["error", error.message]),
      onEmpty: () => events.push(["empty"]),
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

beforeEach(() => mock.timers.enable({ apis: ["setTimeout"] }));
afterEach(() => mock.timers.reset());

test("a burst of changes makes one request, after the pause", () => {
  const api = controllableApi();
  const { handlers } = recordingHandlers();
  const predictions = new LatestPrediction(api.predict, handlers);
  predictions.schedule(() => PIXELS_A);
  mock.timers.tick(DEBOUNCE_MS - 1);
  predictions.schedule(() => PIXELS_B);
  mock.timers.tick(DEBOUNCE_MS - 1);
  assert.equal(api.calls.length, 0);
  mock.timers.tick(1);
  assert.deepEqual(
    api.calls.map((call) => call.pixels),
    [PIXELS_B],
  );
});

test("a new stroke postpones the scheduled request", () => {
  const api = controllableApi();
  const predictions = new LatestPrediction(api.predict, recordingHandlers().handlers);
  predictions.schedule(() => PIXELS_A);
  predictions.postpone();
  mock.timers.tick(DEBOUNCE_MS * 4);
  assert.equal(api.calls.length, 0);
});

test("nothing drawn: no request, the empty state", async () => {
  const api = controllableApi();
  const { events, handlers } = recordingHandlers();
  await new LatestPrediction(api.predict, handlers).now(() => null);
  assert.equal(api.calls.length, 0);
  assert.deepEqual(events, [["empty"]]);
});

test("a late answer to an older drawing is dropped", async () => {
  const api = controllableApi();
  const { events, handlers } = recordingHandlers();
  const predictions = new LatestPrediction(api.predict, handlers);
  const older = predictions.now(() => PIXELS_A);
  const newer = predictions.now(() => PIXELS_B);
  api.calls[1].resolve({ digit: 2 });
  api.calls[0].resolve({ digit: 1 });
  await Promise.all([older, newer]);
  assert.deepEqual(events, [
    ["pending", 1],
    ["pending", 2],
    ["answer", { digit: 2 }, 2],
  ]);
});

test("an answer that arrives after the drawing was emptied is dropped", async () => {
  const api = controllableApi();
  const { events, handlers } = recordingHandlers();
  const predictions = new LatestPrediction(api.predict, handlers);
  const inFlight = predictions.now(() => PIXELS_A);
  await predictions.now(() => null);
  api.calls[0].resolve({ digit: 1 });
  await inFlight;
  assert.deepEqual(events, [["pending", 1], ["empty"]]);
});

test("errors reach the page only for the newest request", async () => {
  const api = controllableApi();
  const { events, handlers } = recordingHandlers();
  const predictions = new LatestPrediction(api.predict, handlers);
  const older = predictions.now(() => PIXELS_A);
  const newer = predictions.now(() => PIXELS_B);
  api.calls[0].reject(new Error("old failure"));
  await settle();
  api.calls[1].reject(new Error("new failure"));
  await Promise.all([older, newer]);
  assert.deepEqual(events.slice(2), [["error", "new failure"]]);
});
