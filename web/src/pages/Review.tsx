// The evaluator's page: the model's unreviewed predictions one at a time with keyboard verdicts (valid,
// invalid, or a correction: drag the box or pick the class, then Enter), the running counts, and the
// failed cases with "request a dataset from the failed cases".
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, call, callWithStatus, client } from "../api/client";
import { ClassPicker, loadClasses } from "../components/ClassPicker";
import { type ClassInfo, Stage, isTyping } from "../components/Stage";
import { ErrorBox, Loading, Pager } from "../components/ui";
import { type Box, fromServer } from "../lib/annotate";
import { useAction, useLoad } from "../lib/hooks";
import { navigate, query, withQuery } from "../lib/router";
import { may } from "../lib/session";
import { ProjectTabs } from "./Images";

type Prediction = Parameters<typeof fromServer>[0] & { image_id: number; id: number };

export function Review({ pid }: { pid: number }) {
  const tab = query().get("view") === "failed" ? "failed" : "queue";
  return (
    <div class="page wide">
      <div class="title-row"><h1>Review</h1><ProjectTabs pid={pid} here="review" />
        <nav class="sub">
          <a href={withQuery({ view: null })} class={tab === "queue" ? "active" : ""}>Queue</a>
          <a href={withQuery({ view: "failed" })} class={tab === "failed" ? "active" : ""}>Failed cases</a>
        </nav></div>
      {tab === "queue" ? <Queue pid={pid} /> : <FailedCases pid={pid} />}
    </div>
  );
}

function Queue({ pid }: { pid: number }) {
  const path = { project_id: pid };
  const classes = useLoad(() => loadClasses(pid), [pid]);
  const byId = useMemo(() => new Map<number, ClassInfo>((classes.data ?? []).map((c) => [c.id, c])), [classes.data]);
  const [skip, setSkip] = useState(0);
  const queue = useLoad(() => call(client.GET("/api/projects/{project_id}/annotations", {
    params: { path, query: { source: "model", reviewed: false, status: "proposed", limit: 1, offset: skip } },
  })), [pid, skip]);
  const [counts, setCounts] = useState({ valid: 0, invalid: 0, corrected: 0 });
  const [edit, setEdit] = useState<Box | null>(null);
  const [note, setNote] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const noteRef = useRef<HTMLInputElement>(null);
  const pred = (queue.data?.items?.[0] ?? null) as Prediction | null;
  const image = useLoad(() => pred ? call(client.GET("/api/projects/{project_id}/images/{image_id}", {
    params: { path: { project_id: pid, image_id: pred.image_id } } })) : Promise.resolve(null), [pred?.id]);
  useEffect(() => { setEdit(pred ? fromServer(pred) : null); setNote(""); }, [pred?.id]);
  const allowed = may(pid, "annotator");

  const judge = async (verdict: "valid" | "invalid") => {
    if (!pred || !edit) return;
    const moved = edit.x !== pred.x || edit.y !== pred.y || edit.w !== pred.w || edit.h !== pred.h;
    const reclassed = edit.class_id !== pred.class_id;
    const corrected = moved || reclassed;
    const body = {
      verdict: corrected ? "invalid" as const : verdict, note,
      corrected_box: moved ? { x: edit.x, y: edit.y, w: edit.w, h: edit.h } : null,
      corrected_class_id: reclassed ? edit.class_id : null,
    };
    try {
      await call(client.PUT("/api/projects/{project_id}/annotations/{annotation_id}/review", {
        params: { path: { project_id: pid, annotation_id: pred.id } }, body,
      }));
      setError(null);
      setCounts((c) => ({ ...c, [corrected ? "corrected" : verdict]: c[corrected ? "corrected" : verdict] + 1 }));
      await queue.reload();
    } catch (exc) {
      setError(exc as ApiError);
    }
  };
  const keys = useRef<(e: KeyboardEvent) => void>(() => undefined);
  keys.current = (e) => {
    if (isTyping(e)) {
      if (e.key === "Enter" && e.target === noteRef.current) { e.preventDefault(); noteRef.current?.blur(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || !allowed) return;
    if (e.key === "v") void judge("valid");
    else if (e.key === "i" || e.key === "x") void judge("invalid");
    else if (e.key === "Enter") void judge("valid"); // valid, or the correction when the box or class changed
    else if (e.key === "s") setSkip((s) => s + 1);
    else if (e.key === "m") { e.preventDefault(); noteRef.current?.focus(); }
    else if (/^[1-9]$/.test(e.key)) {
      const c = (classes.data ?? [])[Number(e.key) - 1];
      if (c && edit) setEdit({ ...edit, class_id: c.id });
    }
  };
  useEffect(() => {
    const h = (e: KeyboardEvent) => keys.current(e);
    window.addEventListener("keydown", h);
    return () => window.removeEventListener("keydown", h);
  }, []);

  const remaining = queue.data?.total ?? 0;
  const changed = !!(pred && edit && (edit.x !== pred.x || edit.y !== pred.y || edit.w !== pred.w || edit.h !== pred.h || edit.class_id !== pred.class_id));
  return (
    <div data-testid="review" data-remaining={remaining} data-prediction={pred?.id ?? ""}>
      <div class="tiles" data-testid="review-counts">
        <div class="tile"><div class="tile-value">{remaining}</div><div class="tile-label">awaiting review</div></div>
        <div class="tile" data-count="valid"><div class="tile-value">{counts.valid}</div><div class="tile-label">valid</div></div>
        <div class="tile" data-count="invalid"><div class="tile-value">{counts.invalid}</div><div class="tile-label">invalid</div></div>
        <div class="tile" data-count="corrected"><div class="tile-value">{counts.corrected}</div><div class="tile-label">corrected</div></div>
      </div>
      <ErrorBox error={queue.error ?? error} />
      {queue.loading && !queue.data ? <Loading /> : !pred ? <p class="muted" data-testid="queue-empty">Nothing awaits review{skip ? ` (${skip} skipped: reload to see them)` : ""}.</p> : !image.data || !edit ? <Loading what="the image" /> : (
        <div class="annotator-body">
          <Stage src={image.data.file_url!} iw={image.data.width!} ih={image.data.height!} boxes={[edit]} selected={edit.key}
            classes={byId} tool="none" editable={allowed} onSelect={() => undefined} onCommitBox={(b) => setEdit(b)}
            height="calc(100vh - 330px)" ghosts={changed ? [{ ...fromServer(pred), key: "was" }] : []} />
          <aside class="side">
            <p><strong>{byId.get(pred.class_id)?.name ?? pred.class_id}</strong> {pred.score != null && <span class="muted">score {pred.score.toFixed(2)}</span>}
              <br /><span class="small muted">image {pred.image_id} · prediction {pred.id}</span></p>
            {allowed && (
              <div class="buttons verdicts">
                <button type="button" class="primary" onClick={() => void judge("valid")} disabled={changed}>Valid <kbd>v</kbd></button>
                <button type="button" class="danger" onClick={() => void judge("invalid")}>{changed ? "Correct" : "Invalid"} <kbd>{changed ? "Enter" : "i"}</kbd></button>
                <button type="button" onClick={() => setSkip((s) => s + 1)}>Skip <kbd>s</kbd></button>
              </div>
            )}
            <label class="field"><span class="label">Note (m)</span>
              <input ref={noteRef} name="note" value={note} onInput={(e) => setNote(e.currentTarget.value)} /></label>
            <p class="small muted">Drag the box or its handles, or pick a class (1–9), to correct it: the correction is stored as a
              human box and the prediction counts as invalid.</p>
            <ClassPicker classes={classes.data ?? []} active={edit.class_id} onPick={(id) => setEdit({ ...edit, class_id: id })} />
          </aside>
        </div>
      )}
    </div>
  );
}

function FailedCases({ pid }: { pid: number }) {
  const path = { project_id: pid };
  const offset = Number(query().get("offset") ?? 0);
  const failed = useLoad(() => call(client.GET("/api/projects/{project_id}/failed-cases", {
    params: { path, query: { limit: 48, offset } } })), [pid, offset]);
  const maps = useLoad(() => call(client.GET("/api/projects/{project_id}/label-maps", { params: { path, query: { limit: 200 } } })), [pid]);
  const handlers = useLoad(() => call(client.GET("/api/handlers")), []);
  const classes = useLoad(() => loadClasses(pid), [pid]);
  const names = new Map((classes.data ?? []).map((c) => [c.id, c.name]));
  const [form, setForm] = useState({ name: "failed-cases", label_map_id: "", handler: "" });
  const request = useAction(async () => {
    const lm = Number(form.label_map_id || maps.data?.items?.[0]?.id);
    const handler = form.handler || ((handlers.data?.items ?? []) as { id: string }[])[0]?.id;
    const { data } = await callWithStatus(client.POST("/api/datasets", { body: {
      project_id: pid, name: form.name, handler, label_map_id: lm, subset: "failed", config: {},
    } }));
    navigate(`/datasets/${data.dataset!.key}`);
  });
  return (
    <div data-testid="failed-cases" data-total={failed.data?.total ?? ""}>
      {may(pid, "annotator") && (
        <form class="card form inline" data-testid="failed-dataset" noValidate onSubmit={(e) => { e.preventDefault(); void request.run(); }}>
          <label class="field"><span class="label">Dataset name</span>
            <input name="name" value={form.name} onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} /></label>
          <label class="field"><span class="label">Label map</span>
            <select name="label_map_id" value={form.label_map_id} onChange={(e) => setForm({ ...form, label_map_id: e.currentTarget.value })}>
              {(maps.data?.items ?? []).map((m) => <option value={m.id}>{m.name}</option>)}</select></label>
          <label class="field"><span class="label">Handler</span>
            <select name="handler" value={form.handler} onChange={(e) => setForm({ ...form, handler: e.currentTarget.value })}>
              {((handlers.data?.items ?? []) as { id: string }[]).map((h) => <option value={h.id}>{h.id}</option>)}</select></label>
          <button type="submit" class="primary" disabled={request.busy || !(failed.data?.total)}>Request a dataset from the failed cases</button>
          <ErrorBox error={request.error} />
        </form>
      )}
      <ErrorBox error={failed.error} />
      {!failed.data ? <Loading /> : (
        <>
          <div class="cases">
            {(failed.data.items ?? []).map((c) => (
              <a class="case" href={`/projects/${pid}/images/${c.image!.id}`} data-prediction={c.prediction!.id}>
                <img src={`/api/projects/${pid}/annotations/${c.prediction!.id}/crop?size=128`} alt="" loading="lazy" />
                <span class="small"><strong>{names.get(c.prediction!.class_id!) ?? c.prediction!.class_id}</strong> {c.prediction!.score != null && c.prediction!.score.toFixed(2)}
                  {c.review?.corrected_class_id ? ` → ${names.get(c.review.corrected_class_id) ?? c.review.corrected_class_id}` : ""}
                  {c.review?.corrected_box ? " (box corrected)" : ""}</span>
                {c.review?.note && <span class="small muted">“{c.review.note}”</span>}
              </a>
            ))}
          </div>
          {!(failed.data.items ?? []).length && <p class="muted">No failed cases yet.</p>}
          <Pager total={failed.data.total ?? 0} limit={48} offset={offset} onPage={(o) => navigate(withQuery({ offset: o || null }))} />
        </>
      )}
    </div>
  );
}

export function Examples({ pid }: { pid: number }) {
  const path = { project_id: pid };
  const ex = useLoad(() => call(client.GET("/api/projects/{project_id}/stats/examples", { params: { path, query: { per_class: 12 } } })), [pid]);
  const classes = useLoad(() => loadClasses(pid), [pid]);
  const group = new Map((classes.data ?? []).map((c) => [c.id, c.group]));
  return (
    <div class="page wide">
      <div class="title-row"><h1>Class examples</h1><ProjectTabs pid={pid} here="examples" /></div>
      <ErrorBox error={ex.error} />
      {!ex.data ? <Loading /> : (ex.data.classes ?? []).map((c) => (
        <section class="card examples" data-class={c.class_id}>
          <header class="card-head"><h2>{group.get(c.class_id!) ? `${group.get(c.class_id!)} / ` : ""}{c.name}</h2>
            <a class="small" href={`/projects/${pid}/images?class_id=${c.class_id}`}>its images</a></header>
          <div class="crops">
            {(c.examples ?? []).map((e) => (
              <a href={`/projects/${pid}/images/${e.image_id}`} title={`box ${e.annotation_id}`}>
                <img src={`/api/projects/${pid}/annotations/${e.annotation_id}/crop?size=128`} alt={c.name} loading="lazy" data-annotation={e.annotation_id} />
              </a>
            ))}
            {!(c.examples ?? []).length && <span class="muted small">no accepted box yet</span>}
          </div>
        </section>
      ))}
    </div>
  );
}
