import { useEffect, useRef, useState } from "preact/hooks";
import { call, callWithStatus, client } from "../api/client";
import type { Dataset, Handler, Job, LabelMap, Page } from "../api/types";
import { changed, defaults, OptionsForm, type Values } from "../components/OptionsForm";
import { ErrorBox, Field, Loading, Meter, Pager, Progress, Section, Status } from "../components/ui";
import { age, bytes, when } from "../lib/format";
import { type Loaded, useAction, useLoad, useRefreshWhile, useTick } from "../lib/hooks";
import { JobBatcher, subscribe } from "../lib/live";
import { ProjectPicker, projectParam } from "../lib/projects";
import { navigate, query, withQuery } from "../lib/router";
import { may, memberships, projectsById } from "../lib/session";

const LIMIT = 50;

export function Datasets() {
  const project = projectParam();
  const offset = Number(query().get("offset") ?? 0);
  const list = useLoad(
    async () => (await call(client.GET("/api/datasets", {
      params: { query: { limit: LIMIT, offset, ...(project != null ? { project_id: project } : {}) } },
    }))) as Page<Dataset>,
    [project, offset],
  );
  const cache = useLoad(() => call(client.GET("/api/dataset-cache")), []);
  const [jobs, setJobs] = useState<Map<string, Job>>(new Map());
  const building = useRef(new Set<string>());
  building.current = new Set((list.data?.items ?? []).filter((d) => d.status === "building").map((d) => d.job_id ?? ""));

  // Builds move live: progress from their job's events; the list is read again when one ends.
  useEffect(() => {
    let reread: number | undefined;
    const again = () => {
      window.clearTimeout(reread);
      reread = window.setTimeout(() => {
        void list.reload();
        void cache.reload();
      }, 100);
    };
    const batcher = new JobBatcher((batch) => {
      const builds = [...batch.values()].filter((j) => j.kind === "dataset.build");
      if (!builds.length) return;
      setJobs((m) => {
        const next = new Map(m);
        for (const j of builds) next.set(j.id, j);
        return next;
      });
      if (builds.some((j) => j.status !== "running" || !building.current.has(j.id))) again();
    });
    const projects = project != null ? [project] : memberships.value.map((m) => m.project_id);
    const subs = projects.map((p) => subscribe({ room: { project: p }, onJob: batcher.push, onJoined: again }));
    return () => {
      window.clearTimeout(reread);
      batcher.stop();
      subs.forEach((u) => u());
    };
  }, [project]);

  const handlers = useLoad(async () => ((await call(client.GET("/api/handlers"))).items ?? []) as unknown as Handler[], []);
  const now = useTick(10_000);
  useRefreshWhile((list.data?.items ?? []).some((d) => d.status === "building"), () => {
    void list.reload();
    void cache.reload();
  });
  const remove = useAction(async (key: string) => {
    await call(client.DELETE("/api/datasets/{key}", { params: { path: { key } } }));
    await Promise.all([list.reload(), cache.reload()]);
  });

  const items = list.data?.items ?? [];
  const used = cache.data?.used_bytes ?? 0;
  const quota = cache.data?.quota_bytes ?? null;
  return (
    <div class="page">
      <div class="title-row">
        <h1>Datasets</h1>
        <div class="spacer" />
        <ProjectPicker value={project} />
      </div>
      <Section title="Cached datasets">
        <div class="quota" data-testid="cache-quota">
          <span>
            Cache: <strong data-testid="cache-used">{bytes(used)}</strong> of {quota ? bytes(quota) : "–"}
            {quota ? ` (${((used / quota) * 100).toFixed(used / quota < 0.01 ? 2 : 0)}%)` : ""} · {cache.data?.datasets ?? "–"} ready datasets
          </span>
          <Meter used={used} total={quota} label="dataset cache used of its quota" />
        </div>
        <ErrorBox error={list.error ?? cache.error ?? remove.error} />
        {!list.data && !list.error && <Loading what="datasets" />}
        {list.data && (
          <div class="scroll-x">
            <table class="table datasets" data-testid="datasets">
              <thead>
                <tr>
                  <th>Name</th><th>Status</th><th>Handler</th><th>Config</th><th>Label map</th><th>Subset</th>
                  <th class="num">Size</th><th class="num">Hits</th><th class="num">Downloads</th><th class="num">Served</th>
                  <th>Created</th><th>Last access</th><th />
                </tr>
              </thead>
              <tbody>
                {items.map((d) => {
                  const job = d.job_id ? jobs.get(d.job_id) : undefined;
                  return (
                    <tr data-dataset={d.key} data-status={d.status} data-name={d.name}>
                      <td>
                        <a href={`/datasets/${d.key}`}>{d.name}</a>
                        <div class="muted small"><code>{d.key.slice(0, 12)}</code> · {projectsById.value.get(d.project_id)?.project}</div>
                      </td>
                      <td>
                        <Status value={d.status} />
                        {d.status === "building" && job && <Progress value={job.progress} status="running" />}
                        {d.error && <div class="error-text small">{d.error}</div>}
                      </td>
                      <td><code>{d.handler}</code></td>
                      <td class="small config" title={JSON.stringify(d.config)}>{configText(d, handlers.data)}</td>
                      <td>#{d.label_map_id ?? "–"}</td>
                      <td>{d.subset}</td>
                      <td class="num">{bytes(d.size_bytes)}</td>
                      <td class="num">{d.hits}</td>
                      <td class="num">{d.downloads}</td>
                      <td class="num">{bytes(d.bytes_served)}</td>
                      <td class="muted nowrap" title={when(d.created_at)}>{age(d.created_at, now)}</td>
                      <td class="muted nowrap" title={when(d.last_access_at)}>{age(d.last_access_at, now)}</td>
                      <td class="right nowrap">
                        {d.status === "ready" && <a class="button small" href={`/api/datasets/${d.key}/archive`} download>Zip</a>}
                        {may(d.project_id, "admin") && d.status !== "building" && (
                          <button type="button" class="danger small" disabled={remove.busy}
                            onClick={() => confirm(`Delete dataset ${d.name} from the cache?`) && void remove.run(d.key)}>Delete</button>
                        )}
                      </td>
                    </tr>
                  );
                })}
                {items.length === 0 && <tr><td colSpan={13} class="muted">No datasets yet.</td></tr>}
              </tbody>
            </table>
          </div>
        )}
        {list.data && <Pager total={list.data.total} limit={LIMIT} offset={offset} onPage={(o) => navigate(withQuery({ offset: o }))} />}
      </Section>
      <RequestForm project={project} handlers={handlers} onRequested={(d) => {
        // The answer is the row as it is now: show it at once (a quick build may be ready before the list is
        // read again, and its row must not skip `building`), then read the list.
        const page = list.data;
        if (page && offset === 0 && (project == null || d.project_id === project)) {
          const rest = page.items.filter((x) => x.key !== d.key);
          list.set({ ...page, items: [d, ...rest], total: page.total + (rest.length === page.items.length ? 1 : 0) });
        }
        void list.reload();
      }} />
    </div>
  );
}

/** A dataset's config as what differs from its handler's defaults (all of it when the handler is unknown). */
function configText(d: Dataset, handlers: Handler[] | undefined): string {
  const options = handlers?.find((h) => h.id === d.handler)?.options;
  const entries = Object.entries(d.config ?? {}).filter(([k, v]) => !options || options[k]?.default !== v);
  if (!entries.length) return options ? "defaults" : "–";
  return entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
}

function RequestForm({ project, handlers, onRequested }: {
  project: number | null;
  handlers: Loaded<Handler[]>;
  onRequested: (dataset: Dataset) => void;
}) {
  const writable = memberships.value.filter((m) => may(m.project_id, "annotator"));
  const [pid, setPid] = useState<number | null>(project ?? writable[0]?.project_id ?? null);
  useEffect(() => {
    if (project != null) setPid(project);
  }, [project]);
  const maps = useLoad(
    async () => (pid == null ? [] : ((await call(client.GET("/api/projects/{project_id}/label-maps", {
      params: { path: { project_id: pid }, query: { limit: 500 } } }))) as Page<LabelMap>).items),
    [pid],
  );
  // Choices live in state; what the form shows falls back to the first handler, the first label map and
  // the handler's defaults at render time (no effect that could overwrite a choice made meanwhile).
  const [chosenHandler, setHandlerId] = useState("");
  const [name, setName] = useState("");
  const [chosenMap, setLabelMap] = useState<{ pid: number | null; id: number } | null>(null);
  const [subset, setSubset] = useState<"all" | "failed">("all");
  const [configs, setConfigs] = useState<Record<string, Values>>({});
  const [answer, setAnswer] = useState<{ status: number; dataset: Dataset; job: Job | null } | null>(null);
  const handlerId = chosenHandler || handlers.data?.[0]?.id || "";
  const handler = handlers.data?.find((h) => h.id === handlerId);
  const labelMap = chosenMap?.pid === pid ? chosenMap.id : maps.data?.[0]?.id ?? null;
  const config = configs[handlerId] ?? (handler ? defaults(handler.options) : {});
  const setConfig = (values: Values) => setConfigs((c) => ({ ...c, [handlerId]: values }));

  const submit = useAction(async () => {
    setAnswer(null);
    const { data, status } = await callWithStatus(client.POST("/api/datasets", {
      body: {
        project_id: pid ?? 0, name: name.trim() || (handler?.name ?? ""), handler: handlerId,
        label_map_id: labelMap ?? 0, subset, config: handler ? changed(handler.options, config) : {},
      },
    }));
    setAnswer({ status, dataset: data.dataset as Dataset, job: (data.job ?? null) as Job | null });
    onRequested(data.dataset as Dataset);
  });

  if (!writable.length) return null;
  return (
    <Section title="Request a dataset">
      <ErrorBox error={handlers.error} />
      <form class="form" noValidate data-testid="dataset-form" onSubmit={(e) => {
        e.preventDefault();
        void submit.run();
      }}>
        <div class="row">
          <Field name="project_id" label="Project" error={submit.error}>
            <select name="project_id" value={pid ?? ""} onChange={(e) => setPid(Number(e.currentTarget.value))}>
              {writable.map((m) => <option value={m.project_id}>{m.project}</option>)}
            </select>
          </Field>
          <Field name="name" label="Name" error={submit.error}>
            <input name="name" value={name} placeholder={handler?.name} onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          <Field name="handler" label="Handler" error={submit.error} help={handler?.description}>
            <select name="handler" value={handlerId} onChange={(e) => setHandlerId(e.currentTarget.value)}>
              {(handlers.data ?? []).map((h) => <option value={h.id}>{h.id} ({h.task})</option>)}
            </select>
          </Field>
          <Field name="label_map_id" label="Label map" error={submit.error}>
            <select name="label_map_id" value={labelMap ?? ""} onChange={(e) => setLabelMap({ pid, id: Number(e.currentTarget.value) })}>
              {(maps.data ?? []).map((m) => <option value={m.id}>{m.name} (#{m.id})</option>)}
            </select>
          </Field>
          <Field name="subset" label="Subset" error={submit.error}>
            <select name="subset" value={subset} onChange={(e) => setSubset(e.currentTarget.value as "all" | "failed")}>
              <option value="all">all images</option>
              <option value="failed">failed cases only</option>
            </select>
          </Field>
        </div>
        {handler && (
          <>
            <h3>Options of {handler.id}</h3>
            <OptionsForm options={handler.options} values={config} onChange={setConfig} error={submit.error} prefix="config" />
          </>
        )}
        <ErrorBox error={submit.error} />
        <div class="buttons">
          <button type="submit" class="primary" disabled={submit.busy || pid == null}>Request</button>
          {handler && <button type="button" onClick={() => setConfig(defaults(handler.options))}>Defaults</button>}
        </div>
      </form>
      {answer && <Requested {...answer} />}
    </Section>
  );
}

function Requested({ status, dataset, job }: { status: number; dataset: Dataset; job: Job | null }) {
  const [live, setLive] = useState<Job | null>(job);
  useEffect(() => {
    setLive(job);
    if (!job) return;
    const batcher = new JobBatcher((b) => setLive(b.get(job.id) ?? null));
    const unsubscribe = subscribe({
      room: { job: job.id }, onJob: batcher.push,
      onJoined: () => void call(client.GET("/api/jobs/{job_id}", { params: { path: { job_id: job.id } } }))
        .then((j) => setLive(j as Job)).catch(() => undefined),
    });
    return () => {
      batcher.stop();
      unsubscribe();
    };
  }, [job?.id]);
  return (
    <div class="answer" data-testid="dataset-answer" data-http={status}>
      {status === 200 ? (
        <p><strong>200 · from the cache:</strong> <a href={`/datasets/${dataset.key}`}>{dataset.name}</a> is built already.</p>
      ) : (
        <>
          <p>
            <strong>202 · build job started</strong> for <a href={`/datasets/${dataset.key}`}>{dataset.name}</a>: job{" "}
            {live && <a href={`/jobs/${live.id}`}><code>{live.id.slice(0, 8)}</code></a>} <Status value={live?.status} />
          </p>
          {live && <Progress value={live.progress} status={live.status} />}
          {live?.message && <p class="muted">{live.message}</p>}
        </>
      )}
    </div>
  );
}
