import { memo } from "preact/compat";
import { useEffect, useRef, useState } from "preact/hooks";
import { call, client } from "../api/client";
import type { Job, Page } from "../api/types";
import { ErrorBox, Loading, Pager, Progress, Status } from "../components/ui";
import { age, duration } from "../lib/format";
import { useAction, useTick } from "../lib/hooks";
import { cancelJob, KINDS, mayCancel, mayRetry, newer, QUEUES, retryJob, runSeconds, STATUSES } from "../lib/jobs";
import { JobBatcher, subscribe } from "../lib/live";
import { navigate, query, withQuery } from "../lib/router";
import { memberships, projectsById } from "../lib/session";

interface Filters {
  project: number | null;
  kind: string;
  status: string;
  queue: string;
  offset: number;
  limit: number;
}

function filtersFromUrl(): Filters {
  const q = query();
  return {
    project: q.get("project") ? Number(q.get("project")) : null,
    kind: q.get("kind") ?? "",
    status: q.get("status") ?? "",
    queue: q.get("queue") ?? "",
    offset: Number(q.get("offset") ?? 0),
    limit: Number(q.get("limit") ?? 50),
  };
}

function matches(job: Job, f: Filters): boolean {
  return (f.project == null || job.project_id === f.project) && (!f.kind || job.kind === f.kind)
    && (!f.status || job.status === f.status) && (!f.queue || job.queue === f.queue);
}

export function Jobs() {
  const f = filtersFromUrl();
  const setFilter = (changes: Partial<Record<keyof Filters, string | number | null>>) =>
    navigate(withQuery({ ...changes, offset: "offset" in changes ? changes.offset : null }));
  return (
    <div class="page">
      <h1>Jobs</h1>
      <div class="filters" data-testid="job-filters">
        <label>
          Project
          <select value={f.project ?? ""} onChange={(e) => setFilter({ project: e.currentTarget.value || null })}>
            <option value="">all of mine</option>
            {memberships.value.map((m) => <option value={m.project_id}>{m.project}</option>)}
          </select>
        </label>
        <label>
          Kind
          <select name="kind" value={f.kind} onChange={(e) => setFilter({ kind: e.currentTarget.value })}>
            <option value="">any</option>
            {KINDS.map((k) => <option value={k}>{k}</option>)}
          </select>
        </label>
        <label>
          Status
          <select name="status" value={f.status} onChange={(e) => setFilter({ status: e.currentTarget.value })}>
            <option value="">any</option>
            {STATUSES.map((s) => <option value={s}>{s}</option>)}
          </select>
        </label>
        <label>
          Queue
          <select name="queue" value={f.queue} onChange={(e) => setFilter({ queue: e.currentTarget.value })}>
            <option value="">any</option>
            {QUEUES.map((q) => <option value={q}>{q}</option>)}
          </select>
        </label>
        <label>
          Rows
          <select value={f.limit} onChange={(e) => setFilter({ limit: e.currentTarget.value })}>
            {[25, 50, 100, 200].map((n) => <option value={n}>{n}</option>)}
          </select>
        </label>
      </div>
      <JobsTable filters={f} />
    </div>
  );
}

/** The live table: a REST snapshot, then `job` events batched into at most ~4 redraws a second. */
export function JobsTable({ filters: f }: { filters: Filters }) {
  const [page, setPage] = useState<Page<Job> | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const rows = useRef<Job[]>([]);
  const [, redraw] = useState(0);
  const generation = useRef(0);
  const filterKey = JSON.stringify(f);
  const projectKey = f.project ?? memberships.value.map((m) => m.project_id).join(",");

  const load = async () => {
    const mine = ++generation.current;
    try {
      const data = (await call(client.GET("/api/jobs", {
        params: {
          query: {
            limit: f.limit, offset: f.offset,
            ...(f.project != null ? { project_id: f.project } : {}),
            ...(f.kind ? { kind: f.kind } : {}),
            ...(f.status ? { status: f.status as Job["status"] } : {}),
            ...(f.queue ? { queue: f.queue as (typeof QUEUES)[number] } : {}),
          },
        },
      }))) as Page<Job>;
      if (mine !== generation.current) return;
      rows.current = data.items;
      setPage(data);
      setError(null);
    } catch (exc) {
      if (mine === generation.current) setError(exc as Error);
    }
  };

  useEffect(() => {
    setPage(null);
    void load();
  }, [filterKey]);

  useEffect(() => {
    const batcher = new JobBatcher((batch) => {
      let list = rows.current;
      const index = new Map(list.map((j, i) => [j.id, i]));
      let added = 0;
      for (const job of batch.values()) {
        const i = index.get(job.id);
        if (i !== undefined) {
          if (newer(list[i], job)) {
            if (list === rows.current) list = list.slice();
            list[i] = job;
          }
        } else if (f.offset === 0 && matches(job, f) && (job.status === "queued" || job.status === "running")) {
          // a new job on the first page: newest first, the oldest row falls off
          if (list === rows.current) list = list.slice();
          list.push(job);
          index.set(job.id, list.length - 1);
          added++;
        }
      }
      if (list === rows.current) return;
      if (added) {
        list.sort((a, b) => (b.created_at ?? "").localeCompare(a.created_at ?? ""));
        list = list.slice(0, f.limit);
        setPage((p) => (p ? { ...p, total: p.total + added } : p));
      }
      rows.current = list;
      redraw((n) => n + 1);
    });
    const projects = f.project != null ? [f.project] : memberships.value.map((m) => m.project_id);
    let reread: number | undefined; // one snapshot after the joins of a (re)connect, not one per room
    const onJoined = () => {
      window.clearTimeout(reread);
      reread = window.setTimeout(() => void load(), 50);
    };
    const unsubscribe = projects.map((project) => subscribe({ room: { project }, onJob: batcher.push, onJoined }));
    return () => {
      window.clearTimeout(reread);
      batcher.stop();
      unsubscribe.forEach((u) => u());
    };
  }, [filterKey, projectKey]);

  if (error) return <ErrorBox error={error as never} />;
  if (!page) return <Loading what="jobs" />;
  return (
    <>
      <JobRows jobs={rows.current} showProject={f.project == null} />
      <Pager total={page.total} limit={f.limit} offset={f.offset} onPage={(o) => navigate(withQuery({ offset: o }))} />
    </>
  );
}

function JobRows({ jobs, showProject }: { jobs: Job[]; showProject: boolean }) {
  const now = useTick(1000);
  const names = projectsById.value;
  return (
    <table class="table jobs" data-testid="jobs">
      <thead>
        <tr>
          <th>Kind</th>{showProject && <th>Project</th>}<th>Queue</th><th>Status</th><th class="w-progress">Progress</th><th>Message</th>
          <th class="num">Attempts</th><th>Age</th><th>Duration</th><th />
        </tr>
      </thead>
      <tbody>
        {jobs.map((job) => (
          <JobRow key={job.id} job={job} now={Math.floor(now / 1000)}
            project={showProject ? (job.project_id != null ? names.get(job.project_id)?.project ?? `#${job.project_id}` : "–") : null} />
        ))}
        {jobs.length === 0 && <tr><td colSpan={10} class="muted">No jobs match.</td></tr>}
      </tbody>
    </table>
  );
}

const JobRow = memo(function JobRow({ job, now, project }: { job: Job; now: number; project: string | null }) {
  const action = useAction(async (what: "cancel" | "retry") => {
    if (what === "cancel") await cancelJob(job.id);
    else navigate(`/jobs/${(await retryJob(job.id)).id}`);
  });
  return (
    <tr data-job={job.id} data-status={job.status} data-kind={job.kind}>
      <td><a href={`/jobs/${job.id}`}>{job.kind}</a> <code class="muted small">{job.id.slice(0, 8)}</code></td>
      {project !== null && <td>{job.project_id != null ? <a href={`/projects/${job.project_id}`}>{project}</a> : project}</td>}
      <td>{job.queue}</td>
      <td><Status value={job.status} /></td>
      <td><Progress value={job.progress} status={job.status} /></td>
      <td class="clip message" title={job.error ?? job.message}>{job.error ?? job.message}
        {action.error && <span class="error inline" role="alert">{action.error.message}</span>}
      </td>
      <td class="num">{job.attempts}</td>
      <td class="muted nowrap">{age(job.created_at, now * 1000)}</td>
      <td class="muted nowrap">{duration(runSeconds(job, now * 1000))}</td>
      <td class="right nowrap">
        {mayCancel(job) && (
          <button type="button" class="small" disabled={action.busy || job.cancel_requested}
            onClick={() => void action.run("cancel")}>{job.cancel_requested ? "Cancelling" : "Cancel"}</button>
        )}
        {mayRetry(job) && (
          <button type="button" class="small" disabled={action.busy} onClick={() => void action.run("retry")}>Retry</button>
        )}
      </td>
    </tr>
  );
});
