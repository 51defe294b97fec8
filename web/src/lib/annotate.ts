// The annotator's model, free of the DOM: boxes in the ORIGINAL image's pixels, the view (zoom and pan)
// that maps them to the screen and back, the edits a drag makes, undo/redo per image, and the writes
// that bring the server's boxes to what the page shows (each carrying the image's revision).
import { ApiError, csrfHeaders, errorFrom } from "../api/client";

export interface Box {
  key: string; // the page's own id: a box keeps it across undo, redo and re-creation
  id: number | null; // the server's id once stored
  class_id: number;
  x: number;
  y: number;
  w: number;
  h: number;
  source: "human" | "model";
  status: "proposed" | "accepted" | "rejected";
  score: number | null;
  deployment_id: number | null;
}

export interface Served {
  id: number;
  class_id: number;
  x: number;
  y: number;
  w: number;
  h: number;
  source: string;
  status: string;
  score?: number | null;
  deployment_id?: number | null;
}

let nextKey = 0;
export const newKey = () => `k${++nextKey}`;

export function fromServer(a: Served, key?: string): Box {
  return {
    key: key ?? `s${a.id}`, id: a.id, class_id: a.class_id, x: a.x, y: a.y, w: a.w, h: a.h,
    source: a.source === "model" ? "model" : "human",
    status: (a.status as Box["status"]) ?? "accepted", score: a.score ?? null, deployment_id: a.deployment_id ?? null,
  };
}

// --- the view: image pixels <-> screen pixels ------------------------------------------------------
export interface View {
  k: number; // screen pixels per image pixel
  tx: number; // screen position of the image's origin
  ty: number;
}

/** The view that fits a `iw` x `ih` image inside a `sw` x `sh` stage, centred (never upscaled past 4x). */
export function fit(iw: number, ih: number, sw: number, sh: number): View {
  const k = Math.min(sw / iw, sh / ih, 4);
  return { k, tx: (sw - iw * k) / 2, ty: (sh - ih * k) / 2 };
}

export const toImage = (v: View, sx: number, sy: number) => ({ x: (sx - v.tx) / v.k, y: (sy - v.ty) / v.k });
export const toScreen = (v: View, ix: number, iy: number) => ({ x: ix * v.k + v.tx, y: iy * v.k + v.ty });

/** Zoom by `factor` keeping the screen point (sx, sy) over the same image point. */
export function zoomAt(v: View, factor: number, sx: number, sy: number, min = 0.02, max = 40): View {
  const k = Math.min(max, Math.max(min, v.k * factor));
  const f = k / v.k;
  return { k, tx: sx - (sx - v.tx) * f, ty: sy - (sy - v.ty) * f };
}

// --- edits -----------------------------------------------------------------------------------------
export type Handle = "nw" | "n" | "ne" | "e" | "se" | "s" | "sw" | "w";
export const HANDLES: Handle[] = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];

export function handlePoint(b: Box, h: Handle): { x: number; y: number } {
  const x = h.includes("w") ? b.x : h.includes("e") ? b.x + b.w : b.x + b.w / 2;
  const y = h.includes("n") ? b.y : h.includes("s") ? b.y + b.h : b.y + b.h / 2;
  return { x, y };
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** The rectangle between two image points, kept inside the image. */
export function rectBetween(a: { x: number; y: number }, b: { x: number; y: number }, iw: number, ih: number) {
  const x0 = clamp(Math.min(a.x, b.x), 0, iw), x1 = clamp(Math.max(a.x, b.x), 0, iw);
  const y0 = clamp(Math.min(a.y, b.y), 0, ih), y1 = clamp(Math.max(a.y, b.y), 0, ih);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

/** `b` moved by (dx, dy) image pixels, kept inside the image. */
export function moved(b: Box, dx: number, dy: number, iw: number, ih: number): Box {
  return { ...b, x: clamp(b.x + dx, 0, iw - b.w), y: clamp(b.y + dy, 0, ih - b.h) };
}

/** `b` with handle `h` dragged to the image point p (the opposite side stays; at least 1 px). */
export function resized(b: Box, h: Handle, p: { x: number; y: number }, iw: number, ih: number): Box {
  let x0 = b.x, y0 = b.y, x1 = b.x + b.w, y1 = b.y + b.h;
  const px = clamp(p.x, 0, iw), py = clamp(p.y, 0, ih);
  if (h.includes("w")) x0 = Math.min(px, x1 - 1);
  if (h.includes("e")) x1 = Math.max(px, x0 + 1);
  if (h.includes("n")) y0 = Math.min(py, y1 - 1);
  if (h.includes("s")) y1 = Math.max(py, y0 + 1);
  return { ...b, x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

// --- undo / redo per image ---------------------------------------------------------------------------
export class History {
  private undos: Box[][] = [];
  private redos: Box[][] = [];
  constructor(private readonly limit = 200) {}
  /** Remember `before` as the state to go back to. */
  push(before: Box[]): void {
    this.undos.push(before);
    if (this.undos.length > this.limit) this.undos.shift();
    this.redos = [];
  }
  undo(current: Box[]): Box[] | null {
    const prev = this.undos.pop();
    if (!prev) return null;
    this.redos.push(current);
    return prev;
  }
  redo(current: Box[]): Box[] | null {
    const next = this.redos.pop();
    if (!next) return null;
    this.undos.push(current);
    return next;
  }
  get canUndo() { return this.undos.length > 0; }
  get canRedo() { return this.redos.length > 0; }
}

const histories = new Map<number, History>();
export function historyOf(imageId: number): History {
  let h = histories.get(imageId);
  if (!h) histories.set(imageId, (h = new History()));
  return h;
}

// --- writes ------------------------------------------------------------------------------------------
/** A write refused because the image moved on: the boxes as they are now and their revision. */
export class Stale extends Error {
  constructor(readonly error: ApiError) {
    super(error.message);
  }
}

async function send<T>(method: string, url: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, {
      method, credentials: "same-origin",
      headers: { ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...csrfHeaders() },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (exc) {
    throw new ApiError(0, "network", `the server did not answer (${exc instanceof Error ? exc.message : exc})`);
  }
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : undefined;
  if (!response.ok) {
    const error = errorFrom(response, parsed);
    throw error.status === 409 && error.code === "stale_revision" ? new Stale(error) : error;
  }
  return parsed as T;
}

const same = (a: Box, b: Box) =>
  a.class_id === b.class_id && a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h && a.status === b.status;

/**
 * Bring the server's boxes (`served`, as last read or written) to `target`, one write per difference,
 * each naming the revision the previous one answered. Returns the target with the server's ids, and the
 * new revision. A stale revision throws `Stale` before anything of this step is written; any other
 * refusal throws the API's error (the boxes written so far stay, and `onStep` has reported them).
 */
export async function sync(base: string, imageId: number, served: Box[], target: Box[], revision: number,
  onStep: (served: Box[], revision: number) => void): Promise<{ boxes: Box[]; revision: number }> {
  const byKey = new Map(served.map((b) => [b.key, b]));
  const wanted = new Set(target.map((b) => b.key));
  let now = [...served];
  let rev = revision;
  for (const b of served) {
    if (wanted.has(b.key) || b.id === null) continue;
    const answer = await send<{ revision: number }>("DELETE", `${base}/annotations/${b.id}?revision=${rev}`);
    rev = answer.revision;
    now = now.filter((s) => s.key !== b.key);
    onStep(now, rev);
  }
  const out: Box[] = [];
  for (const b of target) {
    const had = byKey.get(b.key);
    if (had && had.id !== null) {
      if (!same(had, b)) {
        const patch: Record<string, unknown> = { revision: rev };
        for (const k of ["class_id", "x", "y", "w", "h", "status"] as const) if (had[k] !== b[k]) patch[k] = b[k];
        const answer = await send<{ revision: number; annotation: Served }>("PATCH", `${base}/annotations/${had.id}`, patch);
        rev = answer.revision;
        now = now.map((s) => (s.key === b.key ? fromServer(answer.annotation, b.key) : s));
        onStep(now, rev);
      }
      out.push({ ...b, id: had.id });
      continue;
    }
    const body: Record<string, unknown> = { revision: rev, class_id: b.class_id, x: b.x, y: b.y, w: b.w, h: b.h };
    if (b.source === "model") Object.assign(body, { source: "model", status: b.status, score: b.score, deployment_id: b.deployment_id });
    else if (b.status !== "accepted") body.status = b.status;
    const answer = await send<{ revision: number; annotation: Served }>("POST", `${base}/images/${imageId}/annotations`, body);
    rev = answer.revision;
    const stored = fromServer(answer.annotation, b.key);
    now = [...now, stored];
    onStep(now, rev);
    out.push(stored);
  }
  return { boxes: out, revision: rev };
}

/** The image's boxes and revision as the server has them now. */
export async function readBoxes(base: string, imageId: number): Promise<{ boxes: Box[]; revision: number }> {
  const data = await send<{ revision: number; items: Served[] }>("GET", `${base}/images/${imageId}/annotations`);
  return { boxes: data.items.map((a) => fromServer(a)), revision: data.revision };
}
