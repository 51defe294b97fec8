import { call, client } from "../api/client";
import type { Queue } from "../api/types";
import { ErrorBox, Loading, Section } from "../components/ui";
import { usePoll } from "../lib/hooks";
import { when } from "../lib/format";

const EVERY_MS = 3000;

export function Queues() {
  const queues = usePoll(async () => (await call(client.GET("/api/queues"))) as Queue[], EVERY_MS);
  return (
    <div class="page">
      <h1>Queues and workers</h1>
      <p class="muted">Refreshed every {EVERY_MS / 1000} s{queues.data ? ` · last ${when(new Date().toISOString())}` : ""}.</p>
      <ErrorBox error={queues.error} />
      {!queues.data && !queues.error && <Loading what="queues" />}
      {queues.data && (
        <>
          <Section title="Queues">
          <table class="table" data-testid="queues">
            <thead>
              <tr>
                <th>Queue</th><th class="num">Waiting</th><th class="num">In flight</th><th class="num">Workers</th>
                <th class="num">Finished / min</th><th class="num">Finished / h</th><th>Pool</th><th>Time limit</th>
              </tr>
            </thead>
            <tbody>
              {queues.data.map((q) => (
                <tr data-queue={q.name}>
                  <td><strong>{q.name}</strong><div class="muted small">{q.description}</div></td>
                  <td class="num" data-col="waiting">{q.waiting}</td>
                  <td class="num" data-col="in_flight">{q.in_flight ?? "–"}</td>
                  <td class="num" data-col="workers">{q.workers?.length ?? "–"}</td>
                  <td class="num">{q.finished_last_minute ?? "–"}</td>
                  <td class="num">{q.finished_last_hour ?? "–"}</td>
                  <td>{q.pool}{q.concurrency ? ` × ${q.concurrency}` : ""}</td>
                  <td>{q.time_limit ? `${q.time_limit} s` : "–"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          </Section>
          {queues.data.map((q) => (
            <Section title={`${q.name}: workers`}>
              {!q.workers ? <p class="muted">The server does not report workers yet.</p>
                : q.workers.length === 0 ? <p class="muted">No worker consumes this queue.</p> : (
                  <table class="table compact" data-testid={`workers-${q.name}`}>
                    <thead><tr><th>Worker</th><th>Pool</th><th class="num">Concurrency</th><th>Running now</th><th>Versions</th></tr></thead>
                    <tbody>
                      {q.workers.map((w) => (
                        <tr data-worker={w.name}>
                          <td class="nowrap"><code>{w.name}</code></td>
                          <td>{w.pool}</td>
                          <td class="num">{w.concurrency ?? "–"}</td>
                          <td>
                            {w.active.length === 0 ? <span class="muted">idle</span> : w.active.map((a) => (
                              <div><a href={`/jobs/${a.job_id}`}>{a.kind}</a> <code class="muted">{a.job_id.slice(0, 8)}</code></div>
                            ))}
                          </td>
                          <td class="small">
                            {Object.entries(w.versions ?? {}).map(([k, v]) => <span class="chip">{k} {v}</span>)}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                )}
            </Section>
          ))}
        </>
      )}
    </div>
  );
}
