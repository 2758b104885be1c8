// The models page's words for GET /api/models (static-web/js/models-listing.js): the served
// version, the accepted versions with their gate figures, the decisions with each refusal's
// reason, and how fresh the listing is. `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  describeDecisions,
  describeFreshness,
  describeServed,
  describeVersions,
  gateFacts,
  percent,
  size,
  when,
} from "../../static-web/js/models-listing.js";

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);
const GATE = {
  size_bytes: 1380000,
  gate_images: 1000,
  gate_accuracy: 0.996,
  current_version: "mnist-cnn-1.1.0",
  current_accuracy: 0.994,
  agreement_with_current: 0.991,
  median_latency_ms: 0.8123,
  memory_per_image_kib: 180.4,
  trial_peak_mib: 210.5,
  trial_seconds: 3.2,
};

/** An answer as functions/api/blueprint.py `models` gives it with storage in use. */
function answer(overrides = {}) {
  return {
    current: {
      version: "mnist-cnn-1.2.0",
      sha256: SHA_B,
      source: "storage",
      loaded_at: "2026-12-04T15:00:01Z",
      test_accuracy: 0.9963,
      created_at: "2026-12-01T10:00:00Z",
    },
    pointer: {
      version: "mnist-cnn-1.2.0",
      sha256: SHA_B,
      promoted_at: "2026-12-04T14:59:58.123Z",
      gate: GATE,
      previous_version: "mnist-cnn-1.1.0",
    },
    versions: [
      {
        version: "mnist-cnn-1.1.0",
        sha256: SHA_A,
        size_bytes: 1200000,
        stored_at: "2026-11-01T09:00:00+00:00",
        gate: { gate_images: 1000, gate_accuracy: 0.994, size_bytes: 1200000 },
      },
      {
        version: "mnist-cnn-1.2.0",
        sha256: SHA_B,
        size_bytes: 1380000,
        stored_at: "2026-12-04T14:59:57+00:00",
        gate: GATE,
      },
    ],
    decisions: [
      {
        at: "2026-12-04T15:10:00.000Z",
        decision: "rejected",
        version: "broken",
        sha256: SHA_A,
        figures: { size_bytes: 17 },
        check: "loads",
        reason: "the file is not a parseable ONNX model: Error parsing message",
      },
      {
        at: "2026-12-04T14:59:58.200Z",
        decision: "accepted",
        version: "mnist-cnn-1.2.0",
        sha256: SHA_B,
        figures: GATE,
        previous_version: "mnist-cnn-1.1.0",
      },
      {
        at: "2026-12-03T08:00:00.000Z",
        decision: "rolled_back",
        version: "mnist-cnn-1.1.0",
        sha256: SHA_A,
        figures: {},
        previous_version: "mnist-cnn-1.0.0",
      },
      {
        at: "2026-12-02T08:00:00.000Z",
        decision: "unchanged",
        version: "mnist-cnn-1.0.0",
        sha256: SHA_A,
        figures: {},
        previous_version: "mnist-cnn-1.0.0",
      },
    ],
    listing: {
      loaded: true,
      as_of: "2026-12-04T15:10:03.456789+00:00",
      age_seconds: 2.4,
      refresh_seconds: 10,
      last_error: null,
    },
    ...overrides,
  };
}

test("numbers, times and sizes for people", () => {
  assert.equal(percent(0.996), "99.60 %");
  assert.equal(percent(0.9912, 1), "99.1 %");
  assert.equal(percent(null), "—");
  assert.equal(when("2026-12-04T15:10:03.456789+00:00"), "2026-12-04 15:10:03 UTC");
  assert.equal(when("2026-12-04T16:10:03+01:00"), "2026-12-04 15:10:03 UTC");
  assert.equal(when("not a time"), "not a time");
  assert.equal(when(null), "—");
  assert.equal(size(1380000), "1.4 MB");
  assert.equal(size(184320), "184 KB");
  assert.equal(size(17), "17 bytes");
});

test("the gate figures that are there, in order", () => {
  assert.deepEqual(gateFacts(GATE), [
    ["Gate accuracy", "99.60 % of 1000 gate images"],
    ["Judged against", "mnist-cnn-1.1.0 (99.40 % on the gate set)"],
    ["Agreement with it", "99.1 %"],
    ["Median latency", "0.81 ms per image"],
    ["Memory in a batch", "180 KiB per image"],
    ["Size", "1.4 MB"],
  ]);
  assert.deepEqual(gateFacts({ gate_accuracy: 0.99 }), [["Gate accuracy", "99.00 %"]]);
  assert.deepEqual(gateFacts(null), []);
});

test("the served version with current.json's promotion and gate figures", () => {
  const served = describeServed(answer());
  assert.equal(served.version, "mnist-cnn-1.2.0");
  assert.equal(served.note, "");
  assert.deepEqual(served.facts, [
    ["Source", "the models container"],
    ["Loaded", "2026-12-04 15:00:01 UTC"],
    ["Test accuracy (MNIST)", "99.63 %"],
    ["Created", "2026-12-01 10:00:00 UTC"],
    ["sha256", "bbbbbbbbbbbb"],
    ["Promoted", "2026-12-04 14:59:58 UTC"],
    ["Replaced", "mnist-cnn-1.1.0"],
  ]);
  assert.equal(served.gate[0][1], "99.60 % of 1000 gate images");
});

test("the bundled model, nothing promoted yet", () => {
  const current = { ...answer().current, source: "bundled" };
  const served = describeServed(answer({ current, pointer: null }));
  assert.equal(served.facts[0][1], "bundled with the app");
  assert.match(served.note, /No version has been promoted/);
  assert.deepEqual(served.gate, []);
});

test("a pointer this instance has not followed yet is said so", () => {
  const pointer = { ...answer().pointer, version: "mnist-cnn-1.3.0" };
  const served = describeServed(answer({ pointer }));
  assert.match(served.note, /points at mnist-cnn-1\.3\.0; this instance switches/);
  assert.deepEqual(served.gate, []);
});

test("accepted versions, newest first, the served one marked", () => {
  const versions = describeVersions(answer());
  assert.deepEqual(
    versions.map(({ version, serving, stored, sha256 }) => [version, serving, stored, sha256]),
    [
      ["mnist-cnn-1.2.0", true, "2026-12-04 14:59:57 UTC", "bbbbbbbbbbbb"],
      ["mnist-cnn-1.1.0", false, "2026-11-01 09:00:00 UTC", "aaaaaaaaaaaa"],
    ],
  );
  assert.deepEqual(versions[1].gate, [
    ["Gate accuracy", "99.40 % of 1000 gate images"],
    ["Size", "1.2 MB"],
  ]);
  // Without storage the API lists the bundled model alone, as it describes itself.
  const bundled = answer().current;
  const alone = describeVersions(answer({ versions: [bundled], pointer: null }));
  assert.deepEqual(alone[0].stored, "2026-12-04 15:00:01 UTC");
  assert.deepEqual(alone[0].gate, []);
});

test("decisions: what each did, and why each refusal was made", () => {
  assert.deepEqual(describeDecisions(answer()), [
    {
      at: "2026-12-04 15:10:00 UTC",
      iso: "2026-12-04T15:10:00.000Z",
      outcome: "Refused",
      refused: true,
      version: "broken",
      detail: "Failed the loads check: the file is not a parseable ONNX model: Error parsing message",
    },
    {
      at: "2026-12-04 14:59:58 UTC",
      iso: "2026-12-04T14:59:58.200Z",
      outcome: "Accepted",
      refused: false,
      version: "mnist-cnn-1.2.0",
      detail: "replaced mnist-cnn-1.1.0; gate accuracy 99.60 %",
    },
    {
      at: "2026-12-03 08:00:00 UTC",
      iso: "2026-12-03T08:00:00.000Z",
      outcome: "Rolled back to",
      refused: false,
      version: "mnist-cnn-1.1.0",
      detail: "replaced mnist-cnn-1.0.0",
    },
    {
      at: "2026-12-02 08:00:00 UTC",
      iso: "2026-12-02T08:00:00.000Z",
      outcome: "Already served",
      refused: false,
      version: "mnist-cnn-1.0.0",
      detail: "dropped again while already served",
    },
  ]);
  const [nameless] = describeDecisions(
    answer({ decisions: [{ decision: "rejected", version: "x", check: null, reason: null }] }),
  );
  assert.equal(nameless.detail, "Refused: no reason recorded");
  assert.deepEqual(describeDecisions(answer({ decisions: [] })), []);
});

test("freshness: as of when, and storage failing beside the last listing read", () => {
  assert.deepEqual(describeFreshness(answer()), {
    text: "As of 2026-12-04 15:10:03 UTC (2 s ago).",
    problem: false,
  });
  const down = { ...answer().listing, age_seconds: 42.2, last_error: "ServiceRequestError: x" };
  assert.deepEqual(describeFreshness(answer({ listing: down })), {
    text:
      "As of 2026-12-04 15:10:03 UTC (42 s ago). The latest read of storage failed: " +
      "ServiceRequestError: x",
    problem: true,
  });
  const never = { loaded: false, as_of: null, age_seconds: null, last_error: null };
  assert.equal(describeFreshness(answer({ listing: never })).problem, false);
  assert.match(describeFreshness(answer({ listing: never })).text, /not been read yet/);
  const neverReachable = { ...never, last_error: "ServiceRequestError: refused" };
  assert.deepEqual(describeFreshness(answer({ listing: neverReachable })), {
    text: "Storage could not be read yet (ServiceRequestError: refused).",
    problem: true,
  });
});

test("a damaged current.json and a rollback by serving are said, with their reasons", () => {
  assert.deepEqual(describeFreshness(answer({ pointer_error: "not JSON" })), {
    text:
      "current.json is damaged (not JSON); the served model keeps serving until a promotion " +
      "replaces it.",
    problem: true,
  });
  const [rollback] = describeDecisions(
    answer({
      decisions: [
        {
          decision: "rolled_back",
          version: "mnist-cnn-1.2.0",
          previous_version: "v9",
          reason: "3 runs ended past their bound within 60 s",
        },
      ],
    }),
  );
  assert.equal(rollback.detail, "replaced v9; 3 runs ended past their bound within 60 s");
});
