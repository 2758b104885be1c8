/**
 * The models page's wiring: GET {apiBase}/models when the page opens and on "Refresh", into
 * the view. The API answers from memory, so the page never waits on storage; it says how old
 * the listing is instead.
 *
 * @module models-page
 */

import { apiBase } from "../config.js";
import { TIMEOUT_MS } from "./api-client.js";
import { ModelsView } from "./models-view.js";

const view = new ModelsView(document.querySelector("#listing"));
const refresh = document.querySelector("#refresh");

/** The /models JSON; an Error with a message for people when there is none. */
async function requestListing() {
  let response;
  try {
    response = await fetch(`${apiBase}/models`, {
      headers: { Accept: "application/json" },
      cache: "no-store", // "Refresh" means now, not what a cache kept
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new Error(
      error.name === "TimeoutError"
        ? `The service did not answer within ${TIMEOUT_MS / 1000} seconds.`
        : "The service cannot be reached. Check your connection and try again.",
    );
  }
  if (!response.ok) {
    const detail = await response
      .json()
      .then((problem) => (typeof problem.detail === "string" ? ` ${problem.detail}` : ""))
      .catch(() => "");
    const later = response.status === 429 ? " Try again in a moment." : "";
    throw new Error(`The model listing is not available (${response.status}).${detail}${later}`);
  }
  try {
    return await response.json();
  } catch {
    throw new Error("The service sent a model listing that is not JSON.");
  }
}

async function load() {
  view.showLoading();
  refresh.setAttribute("aria-disabled", "true"); // not `disabled`: focus stays on the button
  try {
    view.showListing(await requestListing());
  } catch (error) {
    view.showError(error.message);
  } finally {
    refresh.setAttribute("aria-disabled", "false");
  }
}

refresh.addEventListener("click", () => {
  if (refresh.getAttribute("aria-disabled") !== "true") load();
});
load();
