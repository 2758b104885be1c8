/**
 * The result card: empty, waiting, an answer (the digit, how sure, all ten probabilities, the
 * 28x28 image the model saw, the model version and the round trip) or an error. Every answer
 * and error is also put into words for screen readers. An answer the model flagged as no digit
 * at all says so, with the closest digit and the probabilities muted and no "% sure" figure.
 *
 * @module result-view
 */

import { FIELD_SIZE } from "./preprocess.js";

/** Below this confidence the answer is shown as "not sure", with the runner-up. */
export const SURE_FROM = 0.8;

export const NOT_A_DIGIT = "That doesn't look like a digit";
export const BARS_LABEL = "Probability of each digit";
export const BARS_LABEL_NOT_A_DIGIT = "Probability of each digit, if it were one";

/** A probability as shown beside its bar: to the nearest tenth of a percent. */
export const percent = (value) => `${(value * 100).toFixed(1)} %`;

/**
 * @typedef {object} Verdict what the card says about an answer, in words
 * @property {"digit" | "unsure" | "not-digit"} kind
 * @property {string} digit the big glyph (the closest digit; muted for "not-digit")
 * @property {string} confidence the headline beside it
 * @property {string} alternative the line under it
 * @property {number | null} meter how full the confidence meter is; null: no meter
 * @property {string} barsLabel the name of the list of probabilities
 * @property {string} announcement what a screen reader hears at once
 */

/**
 * The words for an answer; no DOM access.
 * @param {{digit: number, isDigit?: boolean, confidence: number, probabilities: number[]}} answer
 * @returns {Verdict}
 */
export function verdictOf({ digit, isDigit = true, confidence, probabilities }) {
  if (isDigit === false) {
    return {
      kind: "not-digit",
      digit: String(digit),
      confidence: NOT_A_DIGIT,
      alternative: `Closest digit: ${digit}`,
      meter: null,
      barsLabel: BARS_LABEL_NOT_A_DIGIT,
      announcement: `${NOT_A_DIGIT}. The closest digit is ${digit}.`,
    };
  }
  const ranked = probabilities.map((p, d) => [d, p]).sort((a, b) => b[1] - a[1]);
  const [second, secondProbability] = ranked[1];
  const common = { digit: String(digit), meter: confidence, barsLabel: BARS_LABEL };
  if (confidence >= SURE_FROM) {
    return {
      ...common,
      kind: "digit",
      confidence: `${percent(confidence)} sure`,
      alternative: `Next best: ${second} (${percent(secondProbability)})`,
      announcement: `It's a ${digit}, ${percent(confidence)} sure.`,
    };
  }
  const maybe =
    `Maybe ${digit} (${percent(confidence)}) ` + `or ${second} (${percent(secondProbability)}).`;
  return {
    ...common,
    kind: "unsure",
    confidence: "Not sure",
    alternative: maybe,
    announcement: `Not sure. ${maybe}`,
  };
}

export class ResultView {
  #root;
  #parts;
  #bars;

  /** @param {HTMLElement} root the result card (#result) */
  constructor(root) {
    this.#root = root;
    const part = (selector) => root.querySelector(selector);
    this.#parts = {
      digit: part("#digit"),
      confidence: part("#confidence"),
      meter: part(".meter-fill"),
      alternative: part("#alternative"),
      modelInput: part("#model-input"),
      modelVersion: part("#model-version"),
      roundTrip: part("#round-trip"),
      errorMessage: part("#error-message"),
      retry: part("#retry"),
      announcement: part("#announcement"),
    };
    this.#parts.bars = part("#probabilities");
    this.#bars = this.#buildBars(this.#parts.bars);
  }

  showEmpty() {
    this.#setState("empty");
    this.#parts.errorMessage.textContent = "";
    this.#announce("");
  }

  showPending() {
    this.#root.setAttribute("aria-busy", "true");
  }

  /**
   * @param {import("./api-client.js").Answer} answer
   * @param {Float32Array} pixels what was sent: the model's 28x28 input
   */
  showAnswer(answer, pixels) {
    const { digit, probabilities, modelVersion, roundTripMs } = answer;
    const verdict = verdictOf(answer);
    const parts = this.#parts;
    parts.digit.textContent = verdict.digit;
    parts.confidence.textContent = verdict.confidence;
    parts.meter.parentElement.hidden = verdict.meter === null;
    parts.meter.style.setProperty("--p", String(verdict.meter ?? 0));
    parts.alternative.textContent = verdict.alternative;
    // "digit": a digit, sure; "unsure": a digit, not sure; "not-digit": flagged by the model.
    this.#root.dataset.verdict = verdict.kind;
    if (verdict.kind === "not-digit") delete this.#root.dataset.sure;
    else this.#root.dataset.sure = verdict.kind === "digit" ? "yes" : "no";
    parts.bars.setAttribute("aria-label", verdict.barsLabel);
    this.#bars.forEach(({ item, fill, value }, d) => {
      fill.style.setProperty("--p", String(probabilities[d]));
      value.textContent = percent(probabilities[d]);
      item.toggleAttribute("data-top", d === digit);
    });
    drawModelInput(parts.modelInput, pixels);
    parts.modelVersion.textContent = modelVersion;
    parts.roundTrip.textContent = `${Math.round(roundTripMs)} ms`;
    parts.errorMessage.textContent = "";
    this.#setState("result");
    this.#announce(verdict.announcement);
  }

  /**
   * @param {string} message for people; role="alert" reads it out
   * @param {{canRetry?: boolean}} [options] whether "Try again" could help
   */
  showError(message, { canRetry = true } = {}) {
    this.#setState("error");
    this.#parts.retry.hidden = !canRetry;
    this.#parts.errorMessage.textContent = message;
  }

  #setState(state) {
    this.#root.dataset.state = state;
    this.#root.removeAttribute("aria-busy");
  }

  #announce(text) {
    this.#parts.announcement.textContent = text;
  }

  #buildBars(list) {
    return Array.from({ length: 10 }, (_, d) => {
      const item = document.createElement("li");
      const label = Object.assign(document.createElement("span"), {
        className: "bar-label",
        textContent: String(d),
      });
      const bar = Object.assign(document.createElement("span"), { className: "bar" });
      const fill = Object.assign(document.createElement("span"), { className: "bar-fill" });
      const value = Object.assign(document.createElement("span"), { className: "bar-value" });
      bar.append(fill);
      item.append(label, bar, value);
      list.append(item);
      return { item, fill, value };
    });
  }
}

/** The model's input as it sees it: white ink (255) on black (0), one canvas pixel each. */
function drawModelInput(canvas, pixels) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(FIELD_SIZE, FIELD_SIZE);
  pixels.forEach((value, i) => {
    const grey = Math.round(value);
    image.data.set([grey, grey, grey, 255], i * 4);
  });
  context.putImageData(image, 0, 0);
}
