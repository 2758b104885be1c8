/**
 * The "Wrong? Pick the right digit" control under an answer: ten real buttons in a named group
 * (the model's own digit disabled), and a polite live region that says what became of the
 * correction. It shows an AnswerCorrection's status; picks go back through `onChoose`.
 *
 * @module feedback-view
 */

export class FeedbackView {
  #root;
  #buttons;
  #status;

  /**
   * @param {HTMLElement} root the group (#feedback), holding #feedback-digits and
   *   #feedback-status
   * @param {(digit: number) => void} onChoose
   */
  constructor(root, onChoose) {
    this.#root = root;
    this.#status = root.querySelector("#feedback-status");
    this.#buttons = this.#buildButtons(root.querySelector("#feedback-digits"), onChoose);
  }

  /** @param {import("./correction.js").CorrectionStatus} status */
  render({ state, predicted, label, message, canChoose }) {
    this.#root.hidden = state === "none";
    this.#root.dataset.state = state;
    // A new answer may disable the very button that has focus (its digit is now the model's):
    // focus would fall to the page's start, so it moves to the status beside the buttons.
    const focused = this.#buttons.indexOf(document.activeElement);
    if (focused === predicted) this.#status.focus();
    this.#buttons.forEach((button, d) => {
      // The model's digit is no correction: disabled, so Tab skips it and a screen reader
      // says why. The others use aria-disabled, so a button that has focus keeps it.
      const isPredicted = d === predicted;
      button.disabled = isPredicted;
      if (isPredicted) button.setAttribute("aria-label", `${d}, the model's answer`);
      else button.removeAttribute("aria-label");
      button.setAttribute("aria-disabled", String(!isPredicted && !canChoose));
      button.toggleAttribute("data-chosen", d === label);
      button.setAttribute("aria-pressed", String(d === label)); // which digit was sent
    });
    this.#status.textContent = message;
    this.#status.toggleAttribute("data-error", state === "failed");
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
