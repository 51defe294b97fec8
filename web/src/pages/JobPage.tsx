import { useEffect, useRef, useState } from "preact/hooks";
import { call, client } from "../api/client";
import type { Job } from "../api/types";
import { ErrorBox, Json, KeyValues, Loading, Progress, Section, Status } from "../components/ui";
import { age, duration, when } from "../lib/format";
import { useAction, useLoad, useTick } from "../lib/hooks";
import { cancelJob, mayCancel, mayRetry, newer, retryJob, runSeconds } from "../lib/jobs";
import { JobBatcher, subscribe } from "../lib/live";
import { navigate } from "../lib/router";
import { projectsById } from "../lib/session";

interface Seen {
  at: number;
  status: string;
  progress: number;
  message: string;
}

const MAX_EVENTS = 500;

export function JobPage({ id }: { id: string }) {
  const job = useLoad(async () => (await call(client.GET("/api/jobs/{job_id}", { params: { path: { job_id: id } } }))) as Job, [id]);
  const [events, setEvents] = useState<Seen[]>([]);
  const now = useTick(1000);

  const latest = useRef<Job | undefined>(undefined);
  latest.current = job.data;

  useEffect(() => {
    setEvents([]);
    let seen: Seen[] = [];
    let newest: Job | undefined;
    const batcher = new JobBatcher(() => {
      setEvents(seen.slice());
      if (newest && newer(latest.current, newest)) job.set(newest);
    });
    const unsubscribe = subscribe({
      room: { job: id },
      onJob: (j) => {
        seen = [{ at: Date.now(), status: j.status, progress: j.progress, message: j.message }, ...seen].slice(0, MAX_EVENTS);
        if (newer(newest, j)) newest = j;
        batcher.push(j);
      },
      onJoined: () => void job.reload(),
    });
    return () => {
      unsubscribe();
      batcher.stop();
    };
  }, [id]);

  const action = useAction(async (what: "cancel" | "retry") => {
    if (what === "cancel") job.set(await cancelJob(id));
    else navigate(`/jobs/${(await retryJob(id)).id}`);
  });

  if (job.error && !job.data) {
    return <div class="page"><h1>Job</h1><ErrorBox error={job.error} /></div>;
  }
  const j = job.data;
  if (!j) return <div class="page"><Loading what="the job" /></div>;
  const project = j.project_id != null ? projectsById.value.get(j.project_id) : undefined;
  return (
    <div class="page" data-testid="job-page" data-status={j.status}>
      <div class="title-row">
        <h1>{j.kind}</h1>
        <Status value={j.status} />
        <div class="spacer" />
        {mayCancel(j) && (
          <button type="button" disabled={action.busy || j.cancel_requested} onClick={() => void action.run("cancel")}>
            {j.cancel_requested ? "Cancelling…" : "Cancel"}
          </button>
        )}
        {mayRetry(j) && <button type="button" disabled={action.busy} onClick={() => void action.run("retry")}>Retry</button>}
      </div>
      <ErrorBox error={action.error} />
      <Section title="State">
        <Progress value={j.progress} status={j.status} />
        <p class="message" data-testid="job-message">{j.message || <span class="muted">no message</span>}</p>
        <KeyValues rows={[
          ["id", <code>{j.id}</code>],
          ["queue", j.queue],
          ["project", project ? <a href={`/projects/${j.project_id}`}>{project.project}</a> : (j.project_id ?? "–")],
          ["worker", j.worker ?? "–"],
          ["attempts", j.attempts],
          ["created", `${when(j.created_at)} (${age(j.created_at, now)})`],
          ["started", when(j.started_at)],
          ["finished", when(j.finished_at)],
          ["duration", duration(runSeconds(j, now))],
        ]} />
      </Section>
      {j.error && (
        <Section title="Error">
          <pre class="json error-text">{j.error}</pre>
        </Section>
      )}
      <div class="grid2">
        <Section title="Params"><Json value={j.params} /></Section>
        <Section title="Result"><Json value={j.result} /></Section>
      </div>
      <Section title="Details"><Json value={j.details} /></Section>
      <Section title={`Events seen (${events.length})`}>
        {events.length === 0 ? <p class="muted">No events since this page opened.</p> : (
          <table class="table compact" data-testid="job-events">
            <thead><tr><th>At</th><th>Status</th><th>Progress</th><th>Message</th></tr></thead>
            <tbody>
              {events.map((e) => (
                <tr>
                  <td class="nowrap muted">{when(new Date(e.at).toISOString())}</td>
                  <td><Status value={e.status} /></td>
                  <td class="num">{Math.round(e.progress * 100)}%</td>
                  <td>{e.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
    </div>
  );
}
