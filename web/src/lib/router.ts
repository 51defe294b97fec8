// A small router: the location is a signal, links are plain <a href> (clicks are intercepted), and
// routes are patterns like "/projects/:pid".
import { signal } from "@preact/signals";

export const location = signal(window.location.pathname + window.location.search);

export function navigate(to: string, replace = false): void {
  if (to === location.value) return;
  window.history[replace ? "replaceState" : "pushState"](null, "", to);
  location.value = to;
  window.scrollTo(0, 0);
}

window.addEventListener("popstate", () => {
  location.value = window.location.pathname + window.location.search;
});

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
    return;
  }
  const a = (event.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.hasAttribute("download") || a.origin !== window.location.origin) return;
  if (a.pathname.startsWith("/api/")) return; // downloads and documents go to the server
  event.preventDefault();
  navigate(a.pathname + a.search);
});

export function pathname(): string {
  return location.value.split("?")[0];
}

export function query(): URLSearchParams {
  const i = location.value.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : location.value.slice(i + 1));
}

/** The location with these query parameters changed (empty or null values removed). */
export function withQuery(changes: Record<string, string | number | null | undefined>): string {
  const q = query();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return pathname() + (s ? `?${s}` : "");
}

export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/");
  const got = path.replace(/\/+$/, "").split("/");
  if (path === "/" && pattern === "/") return {};
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}
