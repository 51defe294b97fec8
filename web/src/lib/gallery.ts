// The gallery's filters as query parameters (the API's own names), the order of the images they select
// (the annotator's next and previous) and a prefetch cache of images with their boxes.
import { call, client } from "../api/client";
import type { Schemas } from "../api/client";
import { type Box, readBoxes } from "./annotate";

export type ImageRow = Required<Schemas["ImageOut"]>;
export const FILTERS = ["annotated", "class_id", "source", "status", "reviewed", "failed", "job_id", "order"] as const;

export function filterQuery(q: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of FILTERS) {
    const v = q.get(k);
    if (v) out[k] = v;
  }
  return out;
}

export function filterString(f: Record<string, string>): string {
  const s = new URLSearchParams(f).toString();
  return s ? `?${s}` : "";
}

export async function imagePage(pid: number, f: Record<string, string>, offset: number, limit: number) {
  return call(client.GET("/api/projects/{project_id}/images", {
    // the filters are the API's own query parameters, passed through as the gallery's URL has them
    params: { path: { project_id: pid }, query: { ...(f as Record<string, never>), offset, limit } },
  }));
}

/** The ids the gallery showed for a filter, in order (sparse: pages load as they scroll into view). */
const orders = new Map<string, { ids: (number | undefined)[]; total: number }>();
const orderKey = (pid: number, f: Record<string, string>) => `${pid}${filterString(f)}`;

export function rememberOrder(pid: number, f: Record<string, string>, offset: number, ids: number[], total: number) {
  const k = orderKey(pid, f);
  const o = orders.get(k) ?? { ids: [], total };
  o.total = total;
  ids.forEach((id, i) => (o.ids[offset + i] = id));
  orders.set(k, o);
}

/** The previous and next image of `iid` under filter `f` (null at either end). */
export async function neighbours(pid: number, f: Record<string, string>, iid: number): Promise<[number | null, number | null]> {
  const k = orderKey(pid, f);
  let o = orders.get(k);
  let at = o ? o.ids.indexOf(iid) : -1;
  for (let offset = 0; at < 0 && offset < 20_000; offset += 500) { // not seen yet: read the order
    const page = await imagePage(pid, f, offset, 500);
    const ids = (page.items ?? []).map((i) => i.id!);
    rememberOrder(pid, f, offset, ids, page.total ?? 0);
    o = orders.get(k)!;
    at = o.ids.indexOf(iid);
    if (ids.length < 500) break;
  }
  if (!o || at < 0) return [null, null];
  const fetchAt = async (i: number) => {
    if (i < 0 || i >= o!.total) return null;
    if (o!.ids[i] === undefined) {
      const start = Math.max(0, i - 100);
      const page = await imagePage(pid, f, start, 200);
      rememberOrder(pid, f, start, (page.items ?? []).map((x) => x.id!), page.total ?? 0);
    }
    return o!.ids[i] ?? null;
  };
  return [await fetchAt(at - 1), await fetchAt(at + 1)];
}

export interface Loaded {
  image: ImageRow;
  boxes: Box[];
  revision: number;
  at: number;
}

const cache = new Map<number, Promise<Loaded>>();
const FRESH_MS = 20_000;
const times = new Map<number, number>();

/** The image and its boxes; a prefetched copy younger than 20 s is used at once. */
export function loadImage(pid: number, iid: number, fresh = false): Promise<Loaded> {
  const had = cache.get(iid);
  if (had && !fresh && performance.now() - (times.get(iid) ?? 0) < FRESH_MS) return had;
  const base = `/api/projects/${pid}`;
  const p = Promise.all([
    call(client.GET("/api/projects/{project_id}/images/{image_id}", { params: { path: { project_id: pid, image_id: iid } } })),
    readBoxes(base, iid),
  ]).then(([image, b]) => ({ image: image as ImageRow, boxes: b.boxes, revision: b.revision, at: performance.now() }));
  cache.set(iid, p);
  times.set(iid, performance.now());
  p.catch(() => cache.delete(iid));
  return p;
}

/** Load `iid` and its picture into the browser's cache ahead of the user. */
export function prefetch(pid: number, iid: number | null): void {
  if (iid == null) return;
  void loadImage(pid, iid).then((l) => {
    const img = new Image();
    img.decoding = "async";
    img.src = l.image.file_url;
    void img.decode?.().catch(() => undefined);
  }).catch(() => undefined);
}

export function forget(iid: number): void {
  cache.delete(iid);
}

/** The boxes of the image annotated before this one in this session ("repeat the previous image's boxes"). */
export const previous: { imageId: number | null; boxes: Box[] } = { imageId: null, boxes: [] };
