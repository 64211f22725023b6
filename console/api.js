// The operator API over fetch with the bearer token kept in this tab's session storage.

const KEY = "switchboard.token";

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  sessionStorage.setItem(KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

/** An answer of the API that was not 2xx: its status and the error JSON's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls `method path` with the token; answers the parsed JSON (or null). */
export async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}`, Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = (json && json.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  return json;
}

/** Every item of a list endpoint, following `nextCursor`. */
export async function all(path) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 50; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const url = cursor === null ? `${path}${sep}limit=1000` : `${path}${sep}limit=1000&cursor=${encodeURIComponent(cursor)}`;
    const answer = await call("GET", url);
    items.push(...answer.items);
    cursor = answer.nextCursor;
    if (cursor === null || cursor === undefined) break;
  }
  return items;
}
