import { useEffect, useState } from "preact/hooks";
import { call, client } from "../api/client";
import type { Dataset, Health, Job } from "../api/types";
import { Bars, ErrorBox, Json, KeyValues, Loading, Progress, Section, Status } from "../components/ui";
import { bytes, when } from "../lib/format";
import { useLoad, useRefreshWhile } from "../lib/hooks";
import { JobBatcher, subscribe } from "../lib/live";
import { projectsById } from "../lib/session";

type Manifest = {
  images?: number;
  records?: Record<string, number>;
  objects?: Record<string, Record<string, number>>;
  label_map?: { id: number; classes: string[] };
  files?: Record<string, { records?: number; bytes: number; sha256: string }>;
  health?: Health;
  [k: string]: unknown;
};

const SIZE_ORDER = ["<16", "16-32", "32-64", "64-128", "128-256", ">=256"];

export function DatasetPage({ datasetKey }: { datasetKey: string }) {
  const ds = useLoad(async () => (await call(client.GET("/api/datasets/{key}", { params: { path: { key: datasetKey } } }))) as Dataset, [datasetKey]);
  const [job, setJob] = useState<Job | null>(null);
  const d = ds.data;
  useEffect(() => {
    if (!d?.job_id || d.status !== "building") return;
    const batcher = new JobBatcher((b) => {
      const j = b.get(d.job_id!);
      if (!j) return;
      setJob(j);
      if (j.status !== "running" && j.status !== "queued") void ds.reload();
    });
    const unsubscribe = subscribe({ room: { job: d.job_id }, onJob: batcher.push, onJoined: () => void ds.reload() });
    return () => {
      batcher.stop();
      unsubscribe();
    };
  }, [d?.job_id, d?.status]);

  useRefreshWhile(d?.status === "building", () => void ds.reload());

  if (ds.error && !d) return <div class="page"><h1>Dataset</h1><ErrorBox error={ds.error} /></div>;
  if (!d) return <div class="page"><Loading what="the dataset" /></div>;
  const m = (d.manifest ?? {}) as Manifest;
  return (
    <div class="page" data-testid="dataset-page" data-status={d.status}>
      <div class="title-row">
        <h1>{d.name}</h1>
        <Status value={d.status} />
        <div class="spacer" />
        {d.status === "ready" && <a class="button" href={`/api/datasets/${d.key}/archive`} download>Download zip</a>}
      </div>
      {d.status === "building" && job && <Progress value={job.progress} status="running" />}
      {d.error && <p class="error" role="alert">{d.error}</p>}
      <Section title="Definition">
        <KeyValues rows={[
          ["key", <code>{d.key}</code>],
          ["project", <a href={`/projects/${d.project_id}`}>{projectsById.value.get(d.project_id)?.project ?? d.project_id}</a>],
          ["handler", <code>{d.handler}</code>],
          ["config", <span>{Object.entries(d.config ?? {}).map(([k, v]) => <span class="chip"><code>{k}={JSON.stringify(v)}</code></span>)}</span>],
          ["label map", m.label_map ? `#${m.label_map.id}: ${m.label_map.classes.join(", ")}` : `#${d.label_map_id}`],
          ["subset", d.subset],
          ["data revision", <code>{d.data_revision}</code>],
          ["size", bytes(d.size_bytes)],
          ["sha256", d.sha256 ? <code>{d.sha256}</code> : "–"],
          ["hits · downloads · served", `${d.hits} · ${d.downloads} · ${bytes(d.bytes_served)}`],
          ["created · last access", `${when(d.created_at)} · ${when(d.last_access_at)}`],
          ["build job", d.job_id ? <a href={`/jobs/${d.job_id}`}><code>{d.job_id}</code></a> : "–"],
        ]} />
      </Section>
      {d.status === "ready" && <HealthCharts manifest={m} />}
      <Section title="Manifest">
        <details>
          <summary>manifest.json</summary>
          <Json value={m} />
        </details>
      </Section>
    </div>
  );
}

function HealthCharts({ manifest: m }: { manifest: Manifest }) {
  const h = m.health;
  const splits = h?.splits
    ?? Object.fromEntries(Object.entries(m.records ?? {}).map(([s, n]) => {
      const classes = m.objects?.[s] ?? {};
      return [s, { records: n, objects: Object.values(classes).reduce((a, b) => a + b, 0), classes }];
    }));
  const names = Object.keys(splits);
  const classNames = [...new Set(names.flatMap((s) => Object.keys(splits[s].classes)))];
  const sizes = Object.entries(h?.box_sizes ?? {}).sort(([a], [b]) => SIZE_ORDER.indexOf(a) - SIZE_ORDER.indexOf(b));
  const perImage = Object.entries(h?.objects_per_image ?? {}).sort(([a], [b]) => Number(a) - Number(b));
  return (
    <Section title="Health">
      {!h && <p class="muted">This dataset's manifest has no health section; the counts come from its records.</p>}
      <div class="charts" data-testid="health">
        <div class="chart-box" data-chart="records">
          <h3>Records per split</h3>
          <Bars label="records per split" data={names.map((s) => [s, splits[s].records])} />
        </div>
        <div class="chart-box" data-chart="objects">
          <h3>Objects per split</h3>
          <Bars label="objects per split" data={names.map((s) => [s, splits[s].objects])} color="var(--accent-2)" />
        </div>
        <div class="chart-box wide" data-chart="classes">
          <h3>Objects per class and split</h3>
          <table class="table compact">
            <thead><tr><th>Class</th>{names.map((s) => <th class="num">{s}</th>)}<th class="num">all</th></tr></thead>
            <tbody>
              {classNames.map((c) => (
                <tr data-class={c}>
                  <td>{c}</td>
                  {names.map((s) => <td class="num" data-split={s}>{splits[s].classes[c] ?? 0}</td>)}
                  <td class="num"><strong>{names.reduce((n, s) => n + (splits[s].classes[c] ?? 0), 0)}</strong></td>
                </tr>
              ))}
            </tbody>
          </table>
          <Bars label="objects per class" color="var(--accent-3)"
            data={classNames.map((c) => [c, names.reduce((n, s) => n + (splits[s].classes[c] ?? 0), 0)])} />
        </div>
        {perImage.length > 0 && (
          <div class="chart-box" data-chart="objects_per_image">
            <h3>Objects per image</h3>
            <Bars label="images by objects per image" data={perImage.map(([k, v]) => [`${k} objects`, v])} />
          </div>
        )}
        {sizes.length > 0 && (
          <div class="chart-box" data-chart="box_sizes">
            <h3>Box sizes (longer side, px)</h3>
            <Bars label="boxes by size" data={sizes} color="var(--accent-2)" />
          </div>
        )}
      </div>
    </Section>
  );
}
