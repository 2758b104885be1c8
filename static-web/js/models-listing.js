/**
 * What GET {apiBase}/models answers, put into words for the models page: the version served,
 * the accepted versions with their gate figures, the recent decisions with the reason for
 * each refusal, and how fresh the listing is. Pure: no DOM, no requests.
 *
 * The answer (functions/serving/listing.py, functions/storage/registry.py):
 * `current` (the model this instance serves), `pointer` (current.json, or null), `versions`
 * (accepted, oldest first), `decisions` (the audit log, newest first) and `listing` (`loaded`,
 * `as_of`, `age_seconds`, `refresh_seconds`, `last_error`).
 *
 * @module models-listing
 */

const DECISIONS = {
  accepted: "Accepted",
  rejected: "Refused",
  rolled_back: "Rolled back to",
  unchanged: "Already served",
};

/** @typedef {[string, string]} Fact a term and its value, both for people */

/** "99.60 %" from 0.996; "—" for anything that is no number. */
export function percent(value, digits = 2) {
  return typeof value === "number" && Number.isFinite(value)
    ? `${(value * 100).toFixed(digits)} %`
    : "—";
}

/** "2026-12-04 15:00:00 UTC" from an ISO 8601 time; the text as it came if it is none. */
export function when(iso) {
  if (typeof iso !== "string" || !iso) return "—";
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) return iso;
  return `${time.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** "1.4 MB", "912 KB", "512 bytes". */
export function size(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes)) return "—";
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} KB`;
  return `${bytes} bytes`;
}

/** A sha256 short enough to read and still tell versions apart. */
export function shortHash(sha256) {
  return typeof sha256 === "string" && sha256 ? sha256.slice(0, 12) : "—";
}

const number = (value) => typeof value === "number" && Number.isFinite(value);

/**
 * The gate's figures (functions/promotion/gate.py and trial.py), those that are there, in the
 * order a person asks about them: how accurate, against what, how fast, how big.
 * @param {object | null | undefined} gate
 * @returns {Fact[]}
 */
export function gateFacts(gate) {
  if (!gate || typeof gate !== "object") return [];
  const facts = [];
  if (number(gate.gate_accuracy)) {
    const images = number(gate.gate_images) ? ` of ${gate.gate_images} gate images` : "";
    facts.push(["Gate accuracy", `${percent(gate.gate_accuracy)}${images}`]);
  }
  if (typeof gate.current_version === "string") {
    facts.push([
      "Judged against",
      `${gate.current_version} (${percent(gate.current_accuracy)} on the gate set)`,
    ]);
  }
  if (number(gate.agreement_with_current)) {
    facts.push(["Agreement with it", percent(gate.agreement_with_current, 1)]);
  }
  if (number(gate.median_latency_ms)) {
    facts.push(["Median latency", `${gate.median_latency_ms.toFixed(2)} ms per image`]);
  }
  if (number(gate.memory_per_image_kib)) {
    facts.push(["Memory in a batch", `${Math.round(gate.memory_per_image_kib)} KiB per image`]);
  }
  if (number(gate.size_bytes)) facts.push(["Size", size(gate.size_bytes)]);
  return facts;
}

/**
 * The version this instance serves, and current.json's word on it.
 * @param {object} answer the /models JSON
 * @returns {{version: string, facts: Fact[], gate: Fact[], note: string}}
 */
export function describeServed(answer) {
  const current = answer.current ?? {};
  const pointer = answer.pointer;
  const facts = [
    ["Source", current.source === "storage" ? "the models container" : "bundled with the app"],
    ["Loaded", when(current.loaded_at)],
    ["Test accuracy (MNIST)", percent(current.test_accuracy)],
    ["Created", when(current.created_at)],
    ["sha256", shortHash(current.sha256)],
  ];
  let gate = [];
  let note = "";
  if (!pointer) {
    note = "No version has been promoted from storage: the app serves the model it ships with.";
  } else if (pointer.version === current.version) {
    facts.push(["Promoted", when(pointer.promoted_at)]);
    if (pointer.previous_version) facts.push(["Replaced", pointer.previous_version]);
    gate = gateFacts(pointer.gate);
  } else {
    // The pointer moved after this instance last looked: it follows within its refresh.
    note =
      `current.json points at ${pointer.version}; this instance switches to it at its next ` +
      "check.";
  }
  return { version: current.version ?? "unknown", facts, gate, note };
}

/**
 * The accepted versions, newest first, the served one marked.
 * @param {object} answer
 * @returns {{version: string, serving: boolean, stored: string, sha256: string, gate: Fact[]}[]}
 */
export function describeVersions(answer) {
  const served = answer.current?.version;
  return [...(answer.versions ?? [])].reverse().map((version) => ({
    version: version.version,
    serving: version.version === served,
    stored: when(version.stored_at ?? version.loaded_at),
    sha256: shortHash(version.sha256),
    gate: gateFacts(version.gate),
  }));
}

/**
 * The recent decisions, newest first, each with what it did and, for a refusal, the check
 * that failed and why.
 * @param {object} answer
 * @returns {{at: string, iso: string, outcome: string, refused: boolean, version: string,
 *   detail: string}[]}
 */
export function describeDecisions(answer) {
  return (answer.decisions ?? []).map((record) => {
    const refused = record.decision === "rejected";
    return {
      at: when(record.at),
      iso: typeof record.at === "string" ? record.at : "",
      outcome: DECISIONS[record.decision] ?? String(record.decision),
      refused,
      version: String(record.version ?? "—"),
      detail: refused ? refusal(record) : change(record),
    };
  });
}

function refusal(record) {
  const check = record.check ? `Failed the ${record.check} check` : "Refused";
  return `${check}: ${record.reason ?? "no reason recorded"}`;
}

function change(record) {
  if (record.decision === "unchanged") return "dropped again while already served";
  const gate = record.figures?.gate_accuracy;
  const figures = typeof gate === "number" ? `gate accuracy ${percent(gate)}` : "";
  const previous = record.previous_version ? `replaced ${record.previous_version}` : "";
  // A rollback by serving says why (runs ended past their bound, answers not probabilities).
  const reason = record.reason ? String(record.reason) : "";
  return [previous, figures, reason].filter(Boolean).join("; ");
}

/**
 * How fresh the listing is, and whether storage answered its latest read. The listing is read
 * in the background: storage being down shows here, beside the last listing read.
 * @param {object} answer
 * @returns {{text: string, problem: boolean}}
 */
export function describeFreshness(answer) {
  const listing = answer.listing ?? {};
  if (answer.pointer_error) {
    const text = `current.json is damaged (${answer.pointer_error}); the served model keeps serving until a promotion replaces it.`;
    return { text, problem: true };
  }
  if (!listing.loaded) {
    const text = listing.last_error
      ? `Storage could not be read yet (${listing.last_error}).`
      : "Storage has not been read yet; refresh in a few seconds.";
    return { text, problem: Boolean(listing.last_error) };
  }
  const age = number(listing.age_seconds) ? ` (${Math.round(listing.age_seconds)} s ago)` : "";
  const asOf = `As of ${when(listing.as_of)}${age}.`;
  if (listing.last_error) {
    return {
      text: `${asOf} The latest read of storage failed: ${listing.last_error}`,
      problem: true,
    };
  }
  return { text: asOf, problem: false };
}
