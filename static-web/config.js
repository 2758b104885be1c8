/**
 * Where the site finds the API. Same-origin "/api" by default: Azure Static Web Apps' linked
 * backend and `make run` both serve the functions there. A deployment that calls the function
 * app directly replaces this file with its URL (e.g. "https://<app>.azurewebsites.net/api"),
 * adds that origin to connect-src in staticwebapp.config.json's Content-Security-Policy, and
 * allows the site's origin in the function app's CORS settings.
 */
export const apiBase = "/api";
