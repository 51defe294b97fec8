// The typed API client: openapi-fetch over the generated `schema.d.ts`, same origin, cookie session.
// Every write carries the session's CSRF token (kept in memory only, never in storage).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

/** An answer of the API that is not 2xx: its `{"error": {...}}` body, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: Record<string, string[]> = {},
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when a request answers 401 while signed in (the session ended or expired). */
export function setUnauthorizedHandler(fn: (() => void) | null): void {
  onUnauthorized = fn;
}

export function csrfHeaders(): Record<string, string> {
  return csrfToken ? { "X-CSRF-Token": csrfToken } : {};
}

export const client = createClient<paths>({ baseUrl: "", credentials: "same-origin" });

client.use({
  onRequest({ request }) {
    if (request.method !== "GET" && request.method !== "HEAD" && csrfToken) {
      request.headers.set("X-CSRF-Token", csrfToken);
    }
    return request;
  },
});

function flattenFields(raw: unknown): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const walk = (prefix: string, value: unknown) => {
    if (Array.isArray(value)) {
      if (value.every((v) => typeof v === "string")) out[prefix] = value as string[];
      else value.forEach((v, i) => walk(prefix ? `${prefix}.${i}` : String(i), v));
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) walk(prefix ? `${prefix}.${k}` : k, v);
    } else if (value !== undefined && value !== null) {
      out[prefix] = [String(value)];
    }
  };
  walk("", raw);
  return out;
}

export function errorFrom(response: Response, body: unknown): ApiError {
  const detail = (body as { error?: Schemas["ErrorDetail"] } | undefined)?.error;
  if (detail && typeof detail.message === "string") {
    return new ApiError(detail.status ?? response.status, detail.code ?? "error", detail.message,
      flattenFields(detail.fields));
  }
  return new ApiError(response.status, "error", `${response.status} ${response.statusText || "error"}`);
}

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** Await an openapi-fetch call; its data, or throw the API's error. */
export async function call<T>(request: Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>;
  try {
    answer = await request;
  } catch (exc) {
    throw new ApiError(0, "network", `the server did not answer (${exc instanceof Error ? exc.message : exc})`);
  }
  if (!answer.response.ok) {
    const error = errorFrom(answer.response, answer.error);
    if (error.status === 401 && onUnauthorized) onUnauthorized();
    throw error;
  }
  return answer.data as T;
}

/** Same as `call`, and the status too (datasets answer 200 from the cache or 202 with a build job). */
export async function callWithStatus<T>(request: Promise<Answer<T>>): Promise<{ data: T; status: number }> {
  const answer = await request.catch((exc) => {
    throw new ApiError(0, "network", `the server did not answer (${exc instanceof Error ? exc.message : exc})`);
  });
  if (!answer.response.ok) throw errorFrom(answer.response, answer.error);
  return { data: answer.data as T, status: answer.response.status };
}

/** A route the generated document does not type yet (kept to a minimum). */
export async function raw<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
        ...(method !== "GET" ? csrfHeaders() : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (exc) {
    throw new ApiError(0, "network", `the server did not answer (${exc instanceof Error ? exc.message : exc})`);
  }
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : undefined;
  if (!response.ok) throw errorFrom(response, parsed);
  return parsed as T;
}
