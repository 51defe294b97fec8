// The annotator: one image at a time, keyboard first. Every edit is kept locally at once (and on the
// image's undo stack) and written by `sync` in the background, each write naming the image's revision;
// a stale revision stops the writes and shows the boxes as they are now, to reload or re-apply.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, call, client } from "../api/client";
import { ClassPicker, loadClasses } from "../components/ClassPicker";
import { type ClassInfo, type Rect, Stage, type Tool, colorOf, isTyping, zoomStage } from "../components/Stage";
import { ErrorBox, Loading } from "../components/ui";
import { type Box, Stale, fromServer, historyOf, newKey, readBoxes, sync } from "../lib/annotate";
import {
  type Loaded, filterQuery, filterString, forget, loadImage, neighbours, prefetch, previous,
} from "../lib/gallery";
import { useLoad } from "../lib/hooks";
import { emitWithAck, followJob } from "../lib/live";
import { navigate, query } from "../lib/router";
import { may } from "../lib/session";

interface Conflict {
  error: ApiError;
  mine: Box[]; // what this page wanted
  theirs: Box[]; // the boxes as they are now
  revision: number; // and their revision
  base: Box[]; // what the page had read before its change
}

export interface AssistTiming {
  ms: number; // mouse release -> the animation frame that paints the proposal, measured in the page
  server_ms: number | null; // the API's own total
  via: "socket" | "rest";
}
declare global {
  interface Window { __looplineAssists?: AssistTiming[] }
}

const SHORTCUTS: [string, string][] = [
  ["→ / n, ← / p", "next / previous image"],
  ["b, a", "box tool, assist tool (drag a rough box or click)"],
  ["1–9", "class of the selected box, or of the next one"],
  ["/", "search the classes"],
  ["Enter / Delete", "accept / reject the selected proposal (Delete removes a box)"],
  ["Shift+Enter / Shift+Delete", "accept / reject all proposals"],
  ["Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y", "undo, redo (per image)"],
  ["r", "repeat the previous image's boxes"],
  ["h", "hide / show all boxes"],
  ["c", "crosshair on / off"],
  ["+ − 0, wheel", "zoom in, out, fit; zoom at the cursor"],
  ["Space+drag, right-drag", "pan"],
  ["Esc", "deselect, close"],
  ["?", "this list"],
];

export function Annotator({ pid, iid }: { pid: number; iid: number }) {
  const f = filterQuery(query());
  const fs = filterString(f);
  const base = `/api/projects/${pid}`;
  const editable = may(pid, "annotator");
  const classesLoad = useLoad(() => loadClasses(pid), [pid]);
  const classes = classesLoad.data ?? [];
  const byId = useMemo(() => new Map<number, ClassInfo>(classes.map((c) => [c.id, c])), [classes]);

  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [boxes, setBoxesState] = useState<Box[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [activeClass, setActiveClass] = useState<number | null>(null);
  const [tool, setTool] = useState<Tool>("draw");
  const [crosshair, setCrosshair] = useState(true);
  const [hidden, setHidden] = useState(false);
  const [help, setHelp] = useState(false);
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [saving, setSaving] = useState(0);
  const [revision, setRevision] = useState(0);
  const [near, setNear] = useState<[number | null, number | null]>([null, null]);
  const [assist, setAssist] = useState<AssistTiming | null>(null);
  const [detecting, setDetecting] = useState(false);
  const [, rerender] = useState(0);

  const boxesRef = useRef<Box[]>([]);
  const served = useRef<Box[]>([]);
  const rev = useRef(0);
  const chain = useRef<Promise<void>>(Promise.resolve());
  const dirty = useRef(false);
  const blocked = useRef(false);
  const search = useRef<HTMLInputElement | null>(null);
  const imageRef = useRef(iid);
  imageRef.current = iid;

  const setBoxes = (b: Box[]) => {
    boxesRef.current = b;
    setBoxesState(b);
  };
  const setRev = (r: number) => {
    rev.current = r;
    setRevision(r);
  };

  // load the image (prefetched when it was a neighbour) and its neighbours
  useEffect(() => {
    let gone = false;
    setLoadError(null);
    setConflict(null);
    setError(null);
    setSelected(null);
    blocked.current = false;
    dirty.current = false;
    const started = performance.now();
    loadImage(pid, iid).then((l) => {
      if (gone) return;
      setLoaded(l);
      served.current = l.boxes;
      setBoxes(l.boxes);
      setRev(l.revision);
      document.documentElement.dataset.imageLoadMs = (performance.now() - started).toFixed(1);
    }).catch((exc) => !gone && setLoadError(exc as ApiError));
    void neighbours(pid, f, iid).then((n) => {
      if (gone) return;
      setNear(n);
      prefetch(pid, n[1]);
      prefetch(pid, n[0]);
    }).catch(() => undefined);
    return () => {
      gone = true;
      const kept = boxesRef.current.filter((b) => b.status !== "rejected" && !(b.source === "model" && b.status === "proposed"));
      if (kept.length) {
        previous.imageId = iid;
        previous.boxes = kept;
      }
      forget(iid); // it changed: read it again when we come back
    };
  }, [pid, iid]);

  const image = loaded?.image.id === iid ? loaded.image : null;

  // --- writes: one at a time, each bringing the server to the latest local boxes -------------------
  const enqueue = (task: () => Promise<void>) => {
    chain.current = chain.current.then(task).catch(() => undefined);
    return chain.current;
  };
  const schedule = () => {
    dirty.current = true;
    const forImage = iid;
    void enqueue(async () => {
      if (!dirty.current || blocked.current || imageRef.current !== forImage) return;
      dirty.current = false;
      const target = boxesRef.current;
      const before = served.current;
      setSaving((n) => n + 1);
      try {
        const done = await sync(base, forImage, served.current, target, rev.current, (now, r) => {
          served.current = now;
          setRev(r);
        });
        setRev(done.revision);
        const ids = new Map(done.boxes.map((b) => [b.key, b.id]));
        setBoxes(boxesRef.current.map((b) => (b.id === null && ids.get(b.key) ? { ...b, id: ids.get(b.key)! } : b)));
        setError(null);
      } catch (exc) {
        if (exc instanceof Stale) {
          blocked.current = true;
          const now = await readBoxes(base, forImage);
          setConflict({ error: exc.error, mine: target, theirs: now.boxes, revision: now.revision, base: before });
        } else {
          // refused (a box outside the image, an unknown class...): show the API's words and go back to
          // what the server holds, so the page never shows what was not stored
          setError(exc as ApiError);
          const now = await readBoxes(base, forImage).catch(() => null);
          if (now) {
            served.current = now.boxes;
            setBoxes(now.boxes);
            setRev(now.revision);
          }
        }
      } finally {
        setSaving((n) => n - 1);
      }
    });
  };

  const commit = (next: Box[]) => {
    if (!editable) return;
    historyOf(iid).push(boxesRef.current);
    setBoxes(next);
    schedule();
  };

  const reloadTheirs = () => {
    if (!conflict) return;
    served.current = conflict.theirs;
    setBoxes(conflict.theirs);
    setRev(conflict.revision);
    blocked.current = false;
    setConflict(null);
  };
  const reapplyMine = () => {
    if (!conflict) return;
    const { base: had, mine, theirs } = conflict;
    const hadKeys = new Map(had.map((b) => [b.key, b]));
    const mineKeys = new Set(mine.map((b) => b.key));
    const deleted = new Set(had.filter((b) => !mineKeys.has(b.key)).map((b) => b.key));
    const changed = new Map(mine.filter((b) => hadKeys.has(b.key)).map((b) => [b.key, b]));
    const theirKeys = new Set(theirs.map((b) => b.key));
    const target = [
      ...theirs.filter((t) => !deleted.has(t.key)).map((t) => changed.get(t.key) ?? t),
      ...mine.filter((b) => !theirKeys.has(b.key)).map((b) => (hadKeys.has(b.key) ? { ...b, key: newKey(), id: null } : b)),
    ];
    served.current = theirs;
    setRev(conflict.revision);
    blocked.current = false;
    setConflict(null);
    setBoxes(target);
    schedule();
  };

  // --- edits ---------------------------------------------------------------------------------------
  const classFor = () => activeClass ?? classes[0]?.id ?? null;
  const onDraw = (r: Rect) => {
    const cls = classFor();
    if (cls == null) {
      setError(new ApiError(400, "no_class", "the project has no classes: add one on the project page first"));
      return;
    }
    const b: Box = { key: newKey(), id: null, class_id: cls, ...r, source: "human", status: "accepted", score: null, deployment_id: null };
    commit([...boxesRef.current, b]);
    setSelected(b.key);
  };
  const onCommitBox = (b: Box) => commit(boxesRef.current.map((x) => (x.key === b.key ? b : x)));
  const setClassOf = (key: string, cls: number) => commit(boxesRef.current.map((x) => (x.key === key ? { ...x, class_id: cls } : x)));
  const pickClass = (cls: number) => {
    setActiveClass(cls);
    if (selected) setClassOf(selected, cls);
  };
  const remove = (key: string) => {
    const b = boxesRef.current.find((x) => x.key === key);
    if (!b) return;
    if (b.source === "model" && b.status === "proposed") commit(boxesRef.current.map((x) => (x.key === key ? { ...x, status: "rejected" } : x)));
    else commit(boxesRef.current.filter((x) => x.key !== key));
    setSelected(null);
  };
  const accept = (key: string) =>
    commit(boxesRef.current.map((x) => (x.key === key && x.status === "proposed" ? { ...x, status: "accepted" } : x)));
  const proposals = boxes.filter((b) => b.source === "model" && b.status === "proposed");
  const judgeAll = (status: "accepted" | "rejected") => {
    if (!proposals.length) return;
    commit(boxesRef.current.map((x) => (x.source === "model" && x.status === "proposed" ? { ...x, status } : x)));
  };
  const undo = () => {
    const back = historyOf(iid).undo(boxesRef.current);
    if (back) {
      setBoxes(back);
      schedule();
    }
    rerender((n) => n + 1);
  };
  const redo = () => {
    const again = historyOf(iid).redo(boxesRef.current);
    if (again) {
      setBoxes(again);
      schedule();
    }
    rerender((n) => n + 1);
  };
  const repeatPrevious = () => {
    if (!image || previous.imageId === iid || !previous.boxes.length) {
      setError(new ApiError(400, "nothing", "no previous image with boxes in this session"));
      return;
    }
    const copies = previous.boxes.flatMap((b) => {
      const x = Math.min(b.x, image.width - 1), y = Math.min(b.y, image.height - 1);
      const w = Math.min(b.w, image.width - x), h = Math.min(b.h, image.height - y);
      return w > 0 && h > 0 ? [{ ...b, key: newKey(), id: null, x, y, w, h, source: "human" as const, status: "accepted" as const, score: null, deployment_id: null }] : [];
    });
    commit([...boxesRef.current, ...copies]);
  };

  // --- model help ----------------------------------------------------------------------------------
  const onAssist = (what: { region?: Rect; point?: { x: number; y: number } }, released: number) => {
    const forImage = iid;
    void enqueue(async () => {
      if (blocked.current || imageRef.current !== forImage) return;
      let via: AssistTiming["via"] = "socket";
      type Answer = { annotation: Parameters<typeof fromServer>[0]; revision: number; timings: Record<string, number>; error?: { status: number; code: string; message: string; fields?: Record<string, string[]> } };
      let answer: Answer;
      try {
        try {
          answer = await emitWithAck<Answer>("suggest", { project: pid, image: forImage, ...what }, 3000);
        } catch {
          via = "rest";
          answer = (await call(client.POST("/api/projects/{project_id}/images/{image_id}/suggestions", {
            params: { path: { project_id: pid, image_id: forImage } }, body: what as never,
          }))) as unknown as Answer;
        }
        if (answer.error) throw new ApiError(answer.error.status, answer.error.code, answer.error.message, answer.error.fields ?? {});
      } catch (exc) {
        setError(exc as ApiError);
        return;
      }
      const b = fromServer(answer.annotation, `s${answer.annotation.id}`);
      const expected = rev.current + 1;
      served.current = [...served.current, b];
      historyOf(forImage).push(boxesRef.current);
      setBoxes([...boxesRef.current, b]);
      setRev(answer.revision);
      setSelected(b.key);
      setError(null);
      if (answer.revision !== expected) void mergeNewer(forImage); // someone wrote meanwhile: show it
      await new Promise<void>((done) => requestAnimationFrame(() => done())); // the frame that paints it
      const timing = { ms: performance.now() - released, server_ms: answer.timings?.total_ms ?? null, via };
      (window.__looplineAssists ??= []).push(timing);
      setAssist(timing);
    });
  };
  const mergeNewer = async (forImage: number) => {
    const now = await readBoxes(base, forImage);
    const known = new Set(served.current.map((b) => b.key));
    const extra = now.boxes.filter((b) => !known.has(b.key));
    served.current = [...served.current, ...extra];
    setBoxes([...boxesRef.current, ...extra]);
    setRev(now.revision);
  };
  const detect = async () => {
    setDetecting(true);
    setError(null);
    try {
      const job = await call(client.POST("/api/projects/{project_id}/pre-annotations", {
        params: { path: { project_id: pid } }, body: { image_ids: [iid] },
      }));
      await new Promise<void>((resolve) => {
        const stop = followJob(job.id!, (j) => {
          if (["succeeded", "failed", "cancelled"].includes(j.status)) {
            stop();
            if (j.status !== "succeeded") setError(new ApiError(0, "job", j.error ?? `the detection job ${j.status}`));
            resolve();
          }
        }, () => void call(client.GET("/api/jobs/{job_id}", { params: { path: { job_id: job.id! } } })).then((j) => {
          if (["succeeded", "failed", "cancelled"].includes(j.status ?? "")) {
            stop();
            resolve();
          }
        }));
      });
      await enqueue(() => mergeNewer(iid));
    } catch (exc) {
      setError(exc as ApiError);
    } finally {
      setDetecting(false);
    }
  };

  // --- the keyboard --------------------------------------------------------------------------------
  const go = (to: number | null) => to != null && navigate(`/projects/${pid}/images/${to}${fs}`);
  const keys = useRef<(e: KeyboardEvent) => void>(() => undefined);
  keys.current = (e: KeyboardEvent) => {
    if (isTyping(e)) return;
    const k = e.key;
    const ctrl = e.ctrlKey || e.metaKey;
    if (ctrl && (k === "z" || k === "Z")) return void (e.preventDefault(), e.shiftKey ? redo() : undo());
    if (ctrl && (k === "y" || k === "Y")) return void (e.preventDefault(), redo());
    if (ctrl || e.altKey) return;
    if (k === "?") return setHelp((h) => !h);
    if (k === "Escape") return void (setHelp(false), setSelected(null));
    if (k === "ArrowRight" || k === "n") return void (e.preventDefault(), go(near[1]));
    if (k === "ArrowLeft" || k === "p") return void (e.preventDefault(), go(near[0]));
    if (k === "/") return void (e.preventDefault(), search.current?.focus());
    if (k === "h") return setHidden((h) => !h);
    if (k === "c") return setCrosshair((c) => !c);
    if (k === "b") return setTool("draw");
    if (k === "a") return setTool("assist");
    if (k === "+" || k === "=") return zoomStage(1.25);
    if (k === "-") return zoomStage(0.8);
    if (k === "0") return zoomStage(0);
    if (k === "r") return repeatPrevious();
    if (/^[1-9]$/.test(k)) {
      const c = classes[Number(k) - 1];
      if (c) pickClass(c.id);
      return;
    }
    if (k === "Enter") return void (e.preventDefault(), e.shiftKey ? judgeAll("accepted") : selected && accept(selected));
    if (k === "Delete" || k === "Backspace") return void (e.preventDefault(), e.shiftKey ? judgeAll("rejected") : selected && remove(selected));
    if (k === "Tab") {
      e.preventDefault();
      const shown = boxesRef.current.filter((b) => b.status !== "rejected");
      if (!shown.length) return;
      const at = shown.findIndex((b) => b.key === selected);
      setSelected(shown[(at + (e.shiftKey ? shown.length - 1 : 1)) % shown.length].key);
    }
  };
  useEffect(() => {
    const h = (e: KeyboardEvent) => keys.current(e);
    window.addEventListener("keydown", h);
    return () => window.removeEventListener("keydown", h);
  }, []);

  if (loadError) return <div class="page"><h1>Image {iid}</h1><ErrorBox error={loadError} /></div>;
  if (!image) return <div class="page"><Loading what="the image" /></div>;
  const sel = boxes.find((b) => b.key === selected) ?? null;
  const h = historyOf(iid);
  const shownBoxes = boxes.filter((b) => b.status !== "rejected");
  return (
    <div class="annotator" data-testid="annotator" data-image={iid} data-revision={revision}
      data-saving={saving > 0 ? "true" : "false"} data-tool={tool} data-hidden={hidden ? "true" : "false"}>
      <div class="toolbar">
        <a href={`/projects/${pid}/images${fs}`} class="button small">‹ Gallery</a>
        <button type="button" class="small" disabled={near[0] == null} onClick={() => go(near[0])} title="previous (←)">← Prev</button>
        <button type="button" class="small" disabled={near[1] == null} onClick={() => go(near[1])} title="next (→)">Next →</button>
        <span class="image-name" title={image.original_name}>{image.original_name} <span class="muted">{image.width}×{image.height}</span></span>
        <span class="sep" />
        <button type="button" class={`small${tool === "draw" ? " on" : ""}`} onClick={() => setTool("draw")} title="b">Box</button>
        <button type="button" class={`small${tool === "assist" ? " on" : ""}`} onClick={() => setTool("assist")} title="a" data-testid="assist-tool">Assist</button>
        <button type="button" class={`small${hidden ? " on" : ""}`} onClick={() => setHidden(!hidden)} title="h">{hidden ? "Show all" : "Hide all"}</button>
        <button type="button" class={`small${crosshair ? " on" : ""}`} onClick={() => setCrosshair(!crosshair)} title="c">Crosshair</button>
        <button type="button" class="small" disabled={!h.canUndo} onClick={undo} title="Ctrl+Z">Undo</button>
        <button type="button" class="small" disabled={!h.canRedo} onClick={redo} title="Ctrl+Shift+Z">Redo</button>
        <button type="button" class="small" onClick={repeatPrevious} title="r">Repeat previous</button>
        {editable && <button type="button" class="small" disabled={detecting} onClick={() => void detect()}>{detecting ? "Detecting…" : "Detect"}</button>}
        <span class="sep" />
        <span class="muted small" data-testid="save-state">{saving > 0 ? "saving…" : conflict ? "not saved" : `saved · revision ${revision}`}</span>
        <button type="button" class="small" onClick={() => setHelp(true)} title="?">?</button>
      </div>
      <ErrorBox error={error} />
      {conflict && (
        <div class="conflict" role="alert" data-testid="conflict">
          <strong>Someone else changed this image.</strong> {conflict.error.message}
          <div class="small">Now it holds {conflict.theirs.filter((b) => b.status !== "rejected").length} boxes (revision {conflict.revision}),
            drawn dashed in grey; yours are drawn in colour.</div>
          <div class="buttons">
            <button type="button" onClick={reloadTheirs}>Reload theirs</button>
            <button type="button" class="primary" onClick={reapplyMine}>Re-apply mine</button>
          </div>
        </div>
      )}
      <div class="annotator-body">
        <Stage src={image.file_url} iw={image.width} ih={image.height} boxes={boxes} selected={selected} classes={byId}
          tool={editable && !conflict ? tool : "none"} crosshair={crosshair} hidden={hidden} editable={editable && !conflict}
          ghosts={conflict ? conflict.theirs.filter((b) => b.status !== "rejected") : []}
          onSelect={setSelected} onCommitBox={onCommitBox} onDraw={onDraw} onAssist={onAssist} />
        <aside class="side">
          <ClassPicker classes={classes} active={sel?.class_id ?? activeClass} onPick={pickClass} searchRef={search} />
          {assist && (
            <div class="assist-time" data-testid="assist-time" data-ms={assist.ms.toFixed(1)} data-via={assist.via}>
              assist: <strong>{assist.ms.toFixed(0)} ms</strong> to the proposal
              {assist.server_ms != null && <> · server {assist.server_ms.toFixed(0)} ms</>} · {assist.via}
            </div>
          )}
          {proposals.length > 0 && (
            <div class="proposals" data-testid="proposals">
              <strong>{proposals.length} proposal{proposals.length > 1 ? "s" : ""}</strong>
              <button type="button" class="small" onClick={() => judgeAll("accepted")}>Accept all</button>
              <button type="button" class="small danger" onClick={() => judgeAll("rejected")}>Reject all</button>
            </div>
          )}
          <h3>Boxes ({shownBoxes.length})</h3>
          <ul class="box-list" data-testid="box-list">
            {shownBoxes.map((b) => (
              <li class={b.key === selected ? "on" : ""} data-key={b.key} data-status={b.status} onClick={() => setSelected(b.key)}>
                <span class="swatch" style={{ background: colorOf(byId.get(b.class_id)) }} />
                <span class="name">{byId.get(b.class_id)?.name ?? b.class_id}</span>
                {b.source === "model" && <span class={`status s-${b.status}`}>{b.status}{b.score != null ? ` ${b.score.toFixed(2)}` : ""}</span>}
                <span class="muted small num">{Math.round(b.x)},{Math.round(b.y)} {Math.round(b.w)}×{Math.round(b.h)}</span>
                {b.source === "model" && b.status === "proposed" && editable && (
                  <>
                    <button type="button" class="small" onClick={(e) => (e.stopPropagation(), accept(b.key))}>✓</button>
                    <button type="button" class="small danger" onClick={(e) => (e.stopPropagation(), remove(b.key))}>✗</button>
                  </>
                )}
              </li>
            ))}
          </ul>
        </aside>
      </div>
      {help && (
        <div class="modal" role="dialog" aria-label="Shortcuts" data-testid="shortcuts" onClick={() => setHelp(false)}>
          <div class="card" onClick={(e) => e.stopPropagation()}>
            <h2>Shortcuts</h2>
            <table class="table compact">
              <tbody>{SHORTCUTS.map(([k, v]) => <tr><td><kbd>{k}</kbd></td><td>{v}</td></tr>)}</tbody>
            </table>
          </div>
        </div>
      )}
    </div>
  );
}
