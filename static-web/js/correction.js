/**
 * The offer to correct the answer on screen: open after each answer, nothing sent until a right
 * answer is picked, at most one correction stored per answer, and an outcome shown only while
 * its answer is the one on screen (a late outcome for an older answer is dropped). The right
 * answer is a digit or NOT_DIGIT: under a digit's answer the person picks another digit or "Not
 * a digit"; under an answer that said "not a digit" the person first says "It is a digit", then
 * picks which. No DOM access: the site passes in how to send and how to show the status.
 *
 * @module correction
 */

import { NOT_DIGIT } from "./feedback.js";
import { FIELD_SIZE } from "./preprocess.js";

/** docs/contracts.md section 2's version names: the API refuses any other. */
const VERSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const isDigit = (value) => Number.isInteger(value) && value >= 0 && value <= 9;
/** What /api/feedback takes as `predicted` and `label`: a digit or NOT_DIGIT. */
const isAnswer = (value) => isDigit(value) || value === NOT_DIGIT;

/** "a 3", "an 8", "not a digit": how the confirmation names the right answer. */
export function withArticle(label) {
  if (label === NOT_DIGIT) return "not a digit";
  return `${label === 8 ? "an" : "a"} ${label}`;
}

/**
 * @typedef {object} CorrectionStatus
 * @property {"none" | "open" | "sending" | "saved" | "failed"} state "none": nothing to correct
 * @property {number | "not_digit" | null} predicted the model's answer (not offered as a pick)
 * @property {number | "not_digit" | null} label the right answer picked, once one was
 * @property {boolean} digitsShown whether the ten digits are offered: always under a digit's
 *   answer; under NOT_DIGIT's, once the person said "It is a digit"
 * @property {string} message for people: what happened to the correction
 * @property {boolean} canChoose whether picking an answer sends it now
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
  #digitsShown = false;

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
   * @param {{digit: number, isDigit?: boolean, modelVersion: string}} answer `isDigit` false:
   *   the model said the drawing is no digit (missing: it is one)
   * @param {Float32Array | null} pixels what was sent to /predict for this answer
   */
  offer(answer, pixels) {
    this.#generation += 1;
    const predicted = answer.isDigit === false ? NOT_DIGIT : answer.digit;
    const usable =
      pixels?.length === FIELD_SIZE * FIELD_SIZE &&
      isAnswer(predicted) &&
      VERSION_NAME.test(answer.modelVersion ?? "");
    this.#answer = usable ? { pixels, predicted, modelVersion: answer.modelVersion } : null;
    this.#paused = false;
    this.#digitsShown = usable && predicted !== NOT_DIGIT;
    this.#update(usable ? "open" : "none", null, "");
  }

  /** No answer on screen any more (nothing drawn, an error): nothing to offer. */
  withdraw() {
    this.#generation += 1;
    this.#answer = null;
    this.#paused = false;
    this.#digitsShown = false;
    this.#update("none", null, "");
  }

  /** A newer answer is on its way: the one on screen is about to go, so no new picks. */
  pause() {
    if (this.#paused) return;
    this.#paused = true;
    this.#emit();
  }

  /**
   * "It is a digit", under an answer that said it is not: offer the ten digits (or, with
   * false, fold them away again). Sends nothing; ignored under a digit's answer and while
   * nothing can be picked.
   * @param {boolean} [shown]
   */
  showDigits(shown = true) {
    if (this.#answer?.predicted !== NOT_DIGIT || !this.#canChoose()) return;
    if (this.#digitsShown === shown) return;
    this.#digitsShown = shown;
    this.#emit();
  }

  /**
   * The person picked the right answer, a digit or NOT_DIGIT: send it, once. Ignored while
   * nothing can be picked, and for the model's own answer or a digit not yet offered.
   * @param {number | "not_digit"} label
   */
  async choose(label) {
    if (!this.#canChoose() || !isAnswer(label) || label === this.#answer.predicted) return;
    if (isDigit(label) && !this.#digitsShown) return;
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
      digitsShown: this.#digitsShown,
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
