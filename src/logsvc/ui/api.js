// The API, from the page's own origin, with the key kept in sessionStorage: for this tab only, never in a
// URL or a cookie. Paths are relative to the page (/ui/), so a server behind a path prefix works too.

const KEY_NAME = "logsvc.key";

export function storedKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

/** A refused request, with what the server said (its problem+json detail when it sent one). */
export class ApiError extends Error {
  constructor(status, detail, retryAfter = 0) {
    super(detail);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export function apiUrl(path, params = {}) {
  const url = new URL(`../${path}`, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url;
}

export function authHeaders(key = storedKey()) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Why a response failed, as a sentence. */
export async function failure(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const problem = await response.json();
    if (problem && typeof problem.detail === "string") detail = problem.detail;
  } catch {
    // Not problem+json (a proxy's page, say): the status line says enough.
  }
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "0", 10) || 0;
  return new ApiError(response.status, detail, retryAfter);
}

/** GET a JSON document of the API; ApiError for anything but 2xx. */
export async function getJson(path, params = {}, { signal, key } = {}) {
  const response = await fetch(apiUrl(path, params), {
    headers: { Accept: "application/json", ...authHeaders(key) },
    cache: "no-store",
    credentials: "omit",
    signal,
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}
