// The engine's HTTP API (SPEC section 7). The base is relative by default ("api/trading"), so
// the dashboard calls its own origin both at "/" (the engine serves it) and under "/trading/"
// (nginx proxies that prefix to the engine, seed task 22.3). A build for another layout sets
// VITE_API_BASE, e.g. "/trading/api/trading" or "https://engine.example/api/trading".

export const API_BASE: string = (import.meta.env.VITE_API_BASE as string | undefined)?.replace(/\/$/, "") ??
  "api/trading";

const TOKEN_KEY = "stonks.apiToken";

export function getToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  window.dispatchEvent(new Event("stonks-token"));
}

/** One refused input of a 422: the field's path ("space.reward_risk_ratio") and the reason. */
export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fields: FieldError[] = [],
  ) {
    super(message);
  }
  get unauthorized(): boolean {
    return this.status === 401;
  }
}

type Query = Record<string, string | number | boolean | null | undefined>;

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const qs = params.toString();
  return `${API_BASE}${path}${qs ? `?${qs}` : ""}`;
}

/** The fields a 422 refused (FastAPI's detail list), each with the reason. */
function fieldErrors(body: unknown): FieldError[] {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (!Array.isArray(detail)) return [];
  return detail.map((d: { loc?: unknown[]; msg?: string }) => ({
    field: (d.loc ?? []).filter((p) => p !== "body" && p !== "query").join("."),
    message: d.msg ?? "refused",
  }));
}

/** FastAPI's 422 names the field and the reason; say both. */
function describe(body: unknown, status: number, statusText: string): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return fieldErrors(body)
      .map((e) => (e.field ? `${e.field}: ${e.message}` : e.message))
      .join("; ");
  }
  return `${status} ${statusText}`;
}

export async function api<T>(method: string, path: string, options: { query?: Query; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(url(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (error) {
    throw new ApiError(0, `cannot reach the engine at ${API_BASE} (${(error as Error).message})`);
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    let message = describe(body, response.status, response.statusText);
    if (response.status === 401) {
      message = token
        ? `the API token was refused (${message}); enter the right one with "API token" at the top`
        : `this needs the API token (${message}); enter it with "API token" at the top`;
    }
    throw new ApiError(response.status, message, fieldErrors(body));
  }
  if (body === null && text) throw new ApiError(response.status, "the engine answered something that is not JSON");
  return body as T;
}

/** A file the engine makes (the tax report, the tearsheet): fetched with the token, then saved
 * under the name the engine gives (Content-Disposition) or `fallbackName`. */
export async function download(path: string, query: Query, fallbackName: string): Promise<void> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(url(path, query), { headers });
  } catch (error) {
    throw new ApiError(0, `cannot reach the engine at ${API_BASE} (${(error as Error).message})`);
  }
  if (!response.ok) {
    let body: unknown = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    const message = describe(body, response.status, response.statusText);
    throw new ApiError(response.status, response.status === 401 ? `this needs the API token (${message})` : message);
  }
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") ?? "");
  const href = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = href;
  link.download = named ? named[1] : fallbackName;
  document.body.appendChild(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(href);
}
