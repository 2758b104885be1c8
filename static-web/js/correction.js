/**
 * The "Wrong? Pick the right digit" offer for the answer on screen: open after each answer,
 * nothing sent until a digit is picked, at most one correction stored per answer, and an
 * outcome shown only while its answer is the one on screen (a late outcome for an older answer
 * is dropped). No DOM access: the site passes in how to send and how to show the status.
 *
 * @module correction
 */

import { FIELD_SIZE } from "./preprocess.js";

/** docs/contracts.md section 2's version names: the API refuses any other. */
const VERSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const isDigit = (value) => Number.isInteger(value) && value >= 0 && value <= 9;

/** "a 3", "an 8": the article the confirmation needs. */
export function withArticle(digit) {
  return `${digit === 8 ? "an" : "a"} ${digit}`;
}

/**
 * @typedef {object} CorrectionStatus
 * @property {"none" | "open" | "sending" | "saved" | "failed"} state "none": nothing to correct
 * @property {number | null} predicted the model's digit (its button is not offered)
 * @property {number | null} label the digit picked, once one was
 * @property {string} message for people: what happened to the correction
 * @property {boolean} canChoose whether picking a digit sends it now
 */

export class AnswerCorrection {
  #send;
  #onChange;
  #answer = null; // {pixels, predicted, modelVersion} of the answer on screen
  #generation = 0; // bumped by every new answer; a send's outcome carries its own
  #state = "none";
  #label = null;
  #message = "";
  #paused = false;

  /**
   * @param {(correction: import("./feedback.js").Correction) => Promise<unknown>} send
   * @param {(status: CorrectionStatus) => void} onChange
   */
  constructor(send, onChange) {
    this.#send = send;
    this.#onChange = onChange;
  }

  /**
   * A new answer on screen: a fresh offer for it. Without the 28x28 pixels the model saw, or
   * with an answer the API would refuse to file, there is nothing to offer.
   * @param {{digit: number, modelVersion: string}} answer
   * @param {Float32Array | null} pixels what was sent to /predict for this answer
   */
  offer(answer, pixels) {
    this.#generation += 1;
    const usable =
      pixels?.length === FIELD_SIZE * FIELD_SIZE &&
      isDigit(answer.digit) &&
      VERSION_NAME.test(answer.modelVersion ?? "");
    this.#answer = usable
      ? { pixels, predicted: answer.digit, modelVersion: answer.modelVersion }
      : null;
    this.#paused = false;
    this.#update(usable ? "open" : "none", null, "");
  }

  /** No answer on screen any more (nothing drawn, an error): nothing to offer. */
  withdraw() {
    this.#generation += 1;
    this.#answer = null;
    this.#paused = false;
    this.#update("none", null, "");
  }

  /** A newer answer is on its way: the one on screen is about to go, so no new picks. */
  pause() {
    if (this.#paused) return;
    this.#paused = true;
    this.#emit();
  }

  /**
   * The person picked the right digit: send it, once. Ignored while nothing can be picked.
   * @param {number} label
   */
  async choose(label) {
    if (!this.#canChoose() || !isDigit(label) || label === this.#answer.predicted) return;
    const generation = this.#generation;
    this.#update("sending", label, "Sending…");
    try {
      await this.#send({ ...this.#answer, label });
      if (generation !== this.#generation) return;
      this.#update("saved", label, `Thanks — saved as ${withArticle(label)}.`);
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#update("failed", label, error.message); // nothing was stored: picking again may work
    }
  }

  /** @returns {CorrectionStatus} */
  get status() {
    return {
      state: this.#state,
      predicted: this.#answer?.predicted ?? null,
      label: this.#label,
      message: this.#message,
      canChoose: this.#canChoose(),
    };
  }

  #canChoose() {
    return (this.#state === "open" || this.#state === "failed") && !this.#paused;
  }

  #update(state, label, message) {
    this.#state = state;
    this.#label = label;
    this.#message = message;
    this.#emit();
  }

  #emit() {
    this.#onChange(this.status);
  }
}
