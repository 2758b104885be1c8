/**
 * The models page's content: the served version, the accepted versions and the recent
 * decisions, drawn from models-listing's descriptions. Text only (textContent): nothing the
 * API sends is ever read as HTML.
 *
 * @module models-view
 */

import {
  describeDecisions,
  describeFreshness,
  describeServed,
  describeVersions,
} from "./models-listing.js";

const make = (tag, properties = {}) => Object.assign(document.createElement(tag), properties);

export class ModelsView {
  #root;
  #parts;

  /** @param {HTMLElement} root the page's main element (#listing) */
  constructor(root) {
    this.#root = root;
    const part = (selector) => root.querySelector(selector);
    this.#parts = {
      freshness: part("#freshness"),
      servedVersion: part("#served-version"),
      servedNote: part("#served-note"),
      servedFacts: part("#served-facts"),
      servedGateTitle: part("#served-gate-title"),
      servedGate: part("#served-gate"),
      versions: part("#versions"),
      versionsEmpty: part("#versions-empty"),
      decisions: part("#decisions"),
      decisionsEmpty: part("#decisions-empty"),
    };
  }

  showLoading() {
    this.#root.setAttribute("aria-busy", "true");
  }

  /** @param {object} answer the /models JSON */
  showListing(answer) {
    const parts = this.#parts;
    const served = describeServed(answer);
    parts.servedVersion.textContent = served.version;
    parts.servedNote.textContent = served.note;
    parts.servedNote.hidden = !served.note;
    fillFacts(parts.servedFacts, served.facts);
    fillFacts(parts.servedGate, served.gate);
    parts.servedGateTitle.hidden = served.gate.length === 0;

    const versions = describeVersions(answer);
    parts.versions.replaceChildren(...versions.map(versionEntry));
    parts.versionsEmpty.hidden = versions.length > 0;

    const decisions = describeDecisions(answer);
    parts.decisions.replaceChildren(...decisions.map(decisionEntry));
    parts.decisionsEmpty.hidden = decisions.length > 0;

    const freshness = describeFreshness(answer);
    this.#status(freshness.text, freshness.problem);
    this.#root.removeAttribute("aria-busy");
  }

  /** @param {string} message for people; the last listing shown, if any, stays */
  showError(message) {
    this.#status(message, true);
    this.#root.removeAttribute("aria-busy");
  }

  #status(text, problem) {
    this.#parts.freshness.textContent = text;
    this.#parts.freshness.toggleAttribute("data-error", problem);
  }
}

function fillFacts(list, facts) {
  list.replaceChildren(
    ...facts.flatMap(([term, value]) => [
      make("dt", { textContent: term }),
      make("dd", { textContent: value }),
    ]),
  );
}

function versionEntry(version) {
  const item = make("li", { className: "entry" });
  const heading = make("p", { className: "entry-heading" });
  heading.append(make("strong", { textContent: version.version }));
  if (version.serving) heading.append(make("span", { className: "tag", textContent: "serving" }));
  const stored = make("span", { className: "entry-meta", textContent: `stored ${version.stored}` });
  heading.append(stored);
  const facts = make("dl", { className: "facts" });
  fillFacts(facts, [...version.gate, ["sha256", version.sha256]]);
  item.append(heading, facts);
  return item;
}

function decisionEntry(decision) {
  const item = make("li", { className: "entry" });
  item.toggleAttribute("data-refused", decision.refused);
  const heading = make("p", { className: "entry-heading" });
  heading.append(
    make("span", { className: "outcome", textContent: decision.outcome }),
    " ",
    make("strong", { textContent: decision.version }),
    make("time", { className: "entry-meta", dateTime: decision.iso, textContent: decision.at }),
  );
  item.append(heading);
  if (decision.detail) {
    item.append(make("p", { className: "entry-detail", textContent: decision.detail }));
  }
  return item;
}
