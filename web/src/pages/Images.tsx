// The gallery (thumbnails of tens of thousands of images: only the rows in view are in the DOM, pages
// of 200 are read as they scroll into view) with the API's filters, and the upload page.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { ApiError, csrfHeaders, errorFrom } from "../api/client";
import type { Job } from "../api/types";
import { loadClasses } from "../components/ClassPicker";
import { ErrorBox, Progress, Status } from "../components/ui";
import { type ImageRow, filterQuery, filterString, imagePage, rememberOrder } from "../lib/gallery";
import { useLoad } from "../lib/hooks";
import { followJob } from "../lib/live";
import { navigate, query, withQuery } from "../lib/router";
import { may } from "../lib/session";

const CELL = 168; // px per thumbnail cell (square)
const PAGE = 200;

export function ProjectTabs({ pid, here }: { pid: number; here: string }) {
  const tabs: [string, string][] = [
    ["images", "Images"], ["upload", "Upload"], ["review", "Review"], ["examples", "Class examples"], ["try", "Try the model"],
  ];
  return (
    <nav class="tabs">
      <a href={`/projects/${pid}`}>Project</a>
      {tabs.map(([p, t]) => <a href={`/projects/${pid}/${p}`} class={here === p ? "active" : ""}>{t}</a>)}
    </nav>
  );
}

export function Gallery({ pid }: { pid: number }) {
  const f = filterQuery(query());
  const fs = filterString(f);
  const classes = useLoad(() => loadClasses(pid), [pid]);
  const [total, setTotal] = useState<number | null>(null);
  const [rows, setRows] = useState<Map<number, ImageRow>>(new Map());
  const [error, setError] = useState<ApiError | null>(null);
  const pages = useRef(new Set<number>());
  const box = useRef<HTMLDivElement>(null);
  const [geom, setGeom] = useState({ width: 1000, height: 600, top: 0 });

  useEffect(() => { // a new filter: start over
    pages.current = new Set();
    setRows(new Map());
    setTotal(null);
    void load(0);
  }, [pid, fs]);
  useLayoutEffect(() => {
    const el = box.current!;
    const measure = () => setGeom({ width: el.clientWidth, height: el.clientHeight, top: el.scrollTop });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  async function load(page: number) {
    if (pages.current.has(page)) return;
    pages.current.add(page);
    try {
      const res = await imagePage(pid, f, page * PAGE, PAGE);
      const items = (res.items ?? []) as ImageRow[];
      rememberOrder(pid, f, page * PAGE, items.map((i) => i.id), res.total ?? 0);
      setTotal(res.total ?? 0);
      setRows((old) => {
        const next = new Map(old);
        items.forEach((it, i) => next.set(page * PAGE + i, it));
        return next;
      });
    } catch (exc) {
      pages.current.delete(page);
      setError(exc as ApiError);
    }
  }

  const cols = Math.max(1, Math.floor(geom.width / CELL));
  const n = total ?? 0;
  const lines = Math.ceil(n / cols);
  const first = Math.max(0, Math.floor(geom.top / CELL) - 2);
  const last = Math.min(lines, Math.ceil((geom.top + geom.height) / CELL) + 2);
  const cells: preact.JSX.Element[] = [];
  const want = new Set<number>();
  for (let line = first; line < last; line++) {
    for (let c = 0; c < cols; c++) {
      const i = line * cols + c;
      if (i >= n) break;
      const row = rows.get(i);
      if (!row) want.add(Math.floor(i / PAGE));
      cells.push(
        <a class="thumb" style={{ top: `${line * CELL}px`, left: `${c * CELL}px`, width: `${CELL - 8}px`, height: `${CELL - 8}px` }}
          href={row ? `/projects/${pid}/images/${row.id}${fs}` : undefined} data-image={row?.id} data-index={i}>
          {row ? <>
            <img src={row.thumbnail_url} alt={row.original_name} loading="lazy" decoding="async" />
            <span class="thumb-name">{row.original_name}</span>
            {row.boxes > 0 && <span class="thumb-boxes">{row.boxes}</span>}
          </> : <span class="muted small">…</span>}
        </a>,
      );
    }
  }
  useEffect(() => { for (const p of want) void load(p); }, [first, last, cols, n, rows.size]);

  const set = (k: string, v: string) => navigate(withQuery({ [k]: v || null }), true);
  return (
    <div class="page wide">
      <div class="title-row"><h1>Images</h1><ProjectTabs pid={pid} here="images" />
        <span class="muted" data-testid="image-total">{total == null ? "" : `${total.toLocaleString("en")} images`}</span></div>
      <div class="filters" data-testid="image-filters">
        <label>Annotated <select name="annotated" value={f.annotated ?? ""} onChange={(e) => set("annotated", e.currentTarget.value)}>
          <option value="">any</option><option value="false">unannotated</option><option value="true">with boxes</option></select></label>
        <label>Class <select name="class_id" value={f.class_id ?? ""} onChange={(e) => set("class_id", e.currentTarget.value)}>
          <option value="">any</option>{(classes.data ?? []).map((c) => <option value={c.id}>{c.group ? `${c.group} / ` : ""}{c.name}</option>)}</select></label>
        <label>Source <select name="source" value={f.source ?? ""} onChange={(e) => set("source", e.currentTarget.value)}>
          <option value="">any</option><option value="human">human</option><option value="model">model</option></select></label>
        <label>Status <select name="status" value={f.status ?? ""} onChange={(e) => set("status", e.currentTarget.value)}>
          <option value="">any</option><option value="proposed">proposed</option><option value="accepted">accepted</option><option value="rejected">rejected</option></select></label>
        <label>Reviewed <select name="reviewed" value={f.reviewed ?? ""} onChange={(e) => set("reviewed", e.currentTarget.value)}>
          <option value="">any</option><option value="false">awaiting review</option><option value="true">reviewed</option></select></label>
        <label>Failed <select name="failed" value={f.failed ?? ""} onChange={(e) => set("failed", e.currentTarget.value)}>
          <option value="">any</option><option value="true">failed cases</option><option value="false">not failed</option></select></label>
        <label>Ingest job <input name="job_id" value={f.job_id ?? ""} size={12} onChange={(e) => set("job_id", e.currentTarget.value.trim())} /></label>
        <label>Sort <select name="order" value={f.order ?? "newest"} onChange={(e) => set("order", e.currentTarget.value === "newest" ? "" : e.currentTarget.value)}>
          <option value="newest">newest first</option><option value="oldest">oldest first</option></select></label>
      </div>
      <ErrorBox error={error} />
      <div class="gallery" ref={box} data-testid="gallery" data-rendered={cells.length}
        onScroll={(e) => setGeom((g) => ({ ...g, top: (e.currentTarget as HTMLDivElement).scrollTop }))}>
        <div class="gallery-inner" style={{ height: `${lines * CELL}px` }}>{cells}</div>
        {total === 0 && <p class="muted">No image matches. <a href={`/projects/${pid}/upload`}>Upload some</a>.</p>}
      </div>
    </div>
  );
}

// --- upload ---------------------------------------------------------------------------------------

interface Outcome { name: string; outcome: string; reason?: string; message?: string; image_id?: number }

/** The files of a drop: folders walked (webkitGetAsEntry), zips and images kept as they are. */
async function droppedFiles(dt: DataTransfer): Promise<File[]> {
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (!entries.length) return [...dt.files];
  const out: File[] = [];
  const walk = async (e: FileSystemEntry, prefix: string): Promise<void> => {
    if (e.isFile) {
      const file = await new Promise<File>((res, rej) => (e as FileSystemFileEntry).file(res, rej));
      out.push(prefix ? new File([file], `${prefix}${file.name}`, { type: file.type }) : file);
    } else if (e.isDirectory) {
      const reader = (e as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${e.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, "");
  return out;
}

export function Upload({ pid }: { pid: number }) {
  const [files, setFiles] = useState<File[]>([]);
  const [urls, setUrls] = useState("");
  const [over, setOver] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [job, setJob] = useState<Job | null>(null);
  const [busy, setBusy] = useState(false);
  const allowed = may(pid, "annotator");

  useEffect(() => {
    if (!job?.id || ["succeeded", "failed", "cancelled"].includes(job.status)) return;
    const id = job.id;
    const refresh = () => void fetch(`/api/jobs/${id}`, { credentials: "same-origin" }).then((r) => r.json()).then((j: Job) => setJob(j));
    return followJob(id, (j) => setJob((old) => (!old || (old.updated_at ?? "") <= (j.updated_at ?? "") ? j : old)), refresh);
  }, [job?.id, job?.status]);

  const send = async () => {
    setBusy(true);
    setError(null);
    try {
      let response: Response;
      if (files.length) {
        const form = new FormData();
        for (const f of files) form.append("files", f, f.name);
        response = await fetch(`/api/projects/${pid}/images`, { method: "POST", credentials: "same-origin", headers: csrfHeaders(), body: form });
      } else {
        const list = urls.split(/\s+/).map((u) => u.trim()).filter(Boolean);
        response = await fetch(`/api/projects/${pid}/images`, {
          method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", ...csrfHeaders() },
          body: JSON.stringify({ urls: list }),
        });
      }
      const body = await response.json().catch(() => undefined);
      if (!response.ok) throw errorFrom(response, body);
      setJob(body as Job);
      setFiles([]);
    } catch (exc) {
      setError(exc instanceof ApiError ? exc : new ApiError(0, "network", String(exc)));
    } finally {
      setBusy(false);
    }
  };

  const details = (job?.details ?? {}) as Record<string, number> & { recent?: (Outcome & { index: number })[] };
  const result = (job?.result ?? null) as { files?: Outcome[]; accepted?: number; duplicate?: number; rejected?: number } | null;
  const counts = result ?? details;
  // Each progress event carries the latest outcomes with their place in the job's list: gather them, so every
  // file shows as soon as it is done; the result, when the job ends, is the whole list.
  const seen = useRef(new Map<number, Outcome>());
  const seenJob = useRef<string | undefined>(undefined);
  if (seenJob.current !== job?.id) {
    seen.current = new Map();
    seenJob.current = job?.id;
  }
  for (const o of details.recent ?? []) seen.current.set(o.index, o);
  const outcomes: Outcome[] | null = result?.files
    ?? (seen.current.size ? [...seen.current.entries()].sort((a, b) => a[0] - b[0]).map(([, o]) => o) : null);
  return (
    <div class="page">
      <div class="title-row"><h1>Upload images</h1><ProjectTabs pid={pid} here="upload" /></div>
      {!allowed ? <p class="muted">Viewers cannot upload.</p> : (
        <div class="card">
          <div class={`drop${over ? " over" : ""}`} data-testid="drop"
            onDragOver={(e) => { e.preventDefault(); setOver(true); }} onDragLeave={() => setOver(false)}
            onDrop={(e) => { e.preventDefault(); setOver(false); if (e.dataTransfer) void droppedFiles(e.dataTransfer).then((fl) => setFiles((old) => [...old, ...fl])); }}>
            <p><strong>Drop images, folders or zips here</strong></p>
            <p class="muted small">or <label class="button small">choose files<input type="file" name="files" multiple hidden accept="image/*,.zip"
              onChange={(e) => setFiles((old) => [...old, ...[...(e.currentTarget.files ?? [])]])} /></label>
              <label class="button small">choose a folder<input type="file" name="folder" multiple hidden
                {...{ webkitdirectory: "" }} onChange={(e) => setFiles((old) => [...old, ...[...(e.currentTarget.files ?? [])]])} /></label></p>
            {files.length > 0 && <p data-testid="chosen">{files.length} file{files.length > 1 ? "s" : ""} chosen ({(files.reduce((n, f) => n + f.size, 0) / 1e6).toFixed(1)} MB)
              <button type="button" class="link" onClick={() => setFiles([])}>clear</button></p>}
          </div>
          <label class="field"><span class="label">…or paste image URLs (one per line)</span>
            <textarea name="urls" rows={3} value={urls} onInput={(e) => setUrls(e.currentTarget.value)} /></label>
          <div class="buttons" style={{ marginTop: "10px" }}>
            <button type="button" class="primary" disabled={busy || (!files.length && !urls.trim())} onClick={() => void send()}>
              {busy ? "Sending…" : "Upload"}</button>
          </div>
          <ErrorBox error={error} />
        </div>
      )}
      {job && (
        <div class="card" data-testid="ingest" data-status={job.status}>
          <div class="card-head"><h2>Ingest <a href={`/jobs/${job.id}`}>{job.id?.slice(0, 8)}</a></h2><Status value={job.status} />
            <a class="small" href={`/projects/${pid}/images?job_id=${job.id}`}>its images</a></div>
          <Progress value={job.progress ?? 0} status={job.status} />
          <p class="small" data-testid="ingest-counts">{job.message} · accepted {counts.accepted ?? 0} · duplicate {counts.duplicate ?? 0} · rejected {counts.rejected ?? 0}</p>
          {job.error && <p class="error-text">{job.error}</p>}
          {outcomes && (
            <table class="table compact" data-testid="outcomes" data-complete={result?.files ? "true" : "false"}>
              <thead><tr><th>File</th><th>Outcome</th><th>Why</th></tr></thead>
              <tbody>{outcomes.map((o) => (
                <tr data-file={o.name} data-outcome={o.outcome}>
                  <td>{o.image_id ? <a href={`/projects/${pid}/images/${o.image_id}`}>{o.name}</a> : o.name}</td>
                  <td><span class={`status o-${o.outcome}`}>{o.outcome}</span></td>
                  <td class="small">{o.message ?? o.reason ?? ""}</td>
                </tr>))}</tbody>
            </table>
          )}
        </div>
      )}
    </div>
  );
}
