/**
 * The correction control under an answer, in a named group: under a digit's answer ten real
 * buttons (the model's own digit disabled) and "Not a digit" beside them; under an answer that
 * said "not a digit", an "It is a digit" disclosure button that opens the ten digits. A polite
 * live region says what became of the correction. It shows an AnswerCorrection's status; picks
 * go back through `onChoose`, the disclosure through `onShowDigits`.
 *
 * @module feedback-view
 */

import { NOT_DIGIT } from "./feedback.js";

export const TITLE_DIGIT = "Wrong? Pick the right digit";
export const TITLE_NOT_DIGIT = "Is it a digit after all?";
export const TITLE_WHICH_DIGIT = "Which digit is it?";

/**
 * The group's title for a status; no DOM access.
 * @param {{predicted: number | "not_digit" | null, digitsShown: boolean}} status
 */
export function feedbackTitle({ predicted, digitsShown }) {
  if (predicted !== NOT_DIGIT) return TITLE_DIGIT;
  return digitsShown ? TITLE_WHICH_DIGIT : TITLE_NOT_DIGIT;
}

export class FeedbackView {
  #root;
  #title;
  #digits;
  #buttons;
  #notDigit;
  #isDigit;
  #status;

  /**
   * @param {HTMLElement} root the group (#feedback), holding #feedback-title,
   *   #feedback-digits, #feedback-not-digit, #feedback-is-digit and #feedback-status
   * @param {(label: number | "not_digit") => void} onChoose
   * @param {(shown: boolean) => void} [onShowDigits] "It is a digit" pressed (true) or released
   */
  constructor(root, onChoose, onShowDigits = () => {}) {
    this.#root = root;
    this.#title = root.querySelector("#feedback-title");
    this.#status = root.querySelector("#feedback-status");
    this.#digits = root.querySelector("#feedback-digits");
    this.#buttons = this.#buildButtons(this.#digits, onChoose);
    this.#notDigit = root.querySelector("#feedback-not-digit");
    this.#notDigit.addEventListener("click", () => {
      if (this.#notDigit.getAttribute("aria-disabled") !== "true") onChoose(NOT_DIGIT);
    });
    this.#isDigit = root.querySelector("#feedback-is-digit");
    this.#isDigit.addEventListener("click", () => {
      if (this.#isDigit.getAttribute("aria-disabled") === "true") return;
      onShowDigits(this.#isDigit.getAttribute("aria-expanded") !== "true");
    });
  }

  /** @param {import("./correction.js").CorrectionStatus} status */
  render(status) {
    const { state, predicted, label, digitsShown, message, canChoose } = status;
    const focused = this.#root.contains(document.activeElement) ? document.activeElement : null;
    this.#root.hidden = state === "none";
    this.#root.dataset.state = state;
    this.#title.textContent = feedbackTitle(status);
    const flagged = predicted === NOT_DIGIT;

    this.#digits.hidden = !digitsShown;
    this.#buttons.forEach((button, d) => {
      // The model's digit is no correction: disabled, so Tab skips it and a screen reader
      // says why. The others use aria-disabled, so a button that has focus keeps it.
      const isPredicted = d === predicted;
      button.disabled = isPredicted;
      if (isPredicted) button.setAttribute("aria-label", `${d}, the model's answer`);
      else button.removeAttribute("aria-label");
      this.#enable(button, isPredicted || canChoose, label === d);
    });
    // "Not a digit" beside the digits; under an answer that said so, "It is a digit" instead.
    this.#notDigit.hidden = flagged;
    this.#enable(this.#notDigit, canChoose, label === NOT_DIGIT);
    this.#isDigit.hidden = !flagged;
    this.#isDigit.setAttribute("aria-expanded", String(flagged && digitsShown));
    this.#isDigit.setAttribute("aria-disabled", String(!canChoose));

    this.#status.textContent = message;
    this.#status.toggleAttribute("data-error", state === "failed");
    // A new answer may disable or hide the very button that has focus (its digit is now the
    // model's, or it is no longer offered): focus would fall to the page's start, so it moves
    // to the status beside the buttons.
    if (focused && (focused.disabled || focused.closest("[hidden]"))) this.#status.focus();
  }

  /** aria-disabled rather than disabled, so a button that has focus keeps it. */
  #enable(button, enabled, chosen) {
    button.setAttribute("aria-disabled", String(!enabled));
    button.toggleAttribute("data-chosen", chosen);
    button.setAttribute("aria-pressed", String(chosen)); // which answer was sent
  }

  #buildButtons(container, onChoose) {
    return Array.from({ length: 10 }, (_, d) => {
      const button = Object.assign(document.createElement("button"), {
        type: "button",
        className: "feedback-digit",
        textContent: String(d),
      });
      button.addEventListener("click", () => {
        if (button.getAttribute("aria-disabled") !== "true") onChoose(d);
      });
      container.append(button);
      return button;
    });
  }
}
