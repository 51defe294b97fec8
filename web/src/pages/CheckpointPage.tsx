import { useEffect, useRef, useState } from "preact/hooks";
import { call, client, raw } from "../api/client";
import type { Checkpoint, Dataset, Deployment, EpochEntry, Job, Page, StepReport } from "../api/types";
import { LineChart, type Series } from "../components/Chart";
import { changed, defaults, nest, OptionsForm, optionsFromSchema, type Values } from "../components/OptionsForm";
import { ErrorBox, Field, Json, KeyValues, Loading, Progress, Section, Status } from "../components/ui";
import { when } from "../lib/format";
import { useAction, useLoad, useRefreshWhile } from "../lib/hooks";
import { cancelJob, mayCancel } from "../lib/jobs";
import { JobBatcher, subscribe } from "../lib/live";
import { architectures, trainableDatasets } from "../lib/models";
import { navigate } from "../lib/router";
import { may } from "../lib/session";
import { Deployments, useModelEvents } from "./Models";
import type { HandlerOption } from "../api/types";

interface Lineage {
  ancestors: { id: number; name: string; status: string; dataset_key: string | null }[];
  children: number[];
  dataset: { key: string; cached: boolean; name?: string; handler?: string; config?: Values; records?: Record<string, number> } | null;
  label_map: { id: number; name: string; classes: { id: number; name: string; group: string | null }[] } | null;
  created_by: { id: number; name: string } | null;
}

const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2"];

export function CheckpointPage({ pid, cid }: { pid: number; cid: number }) {
  const path = { project_id: pid, checkpoint_id: cid };
  const ck = useLoad(async () => (await call(client.GET("/api/projects/{project_id}/checkpoints/{checkpoint_id}", { params: { path } }))) as Checkpoint, [pid, cid]);
  const lineage = (ck.data?.lineage ?? null) as Lineage | null;
  const parentId = lineage?.ancestors[lineage.ancestors.length - 1]?.id ?? null;
  const parent = useLoad(async () => (parentId == null ? null : (await call(client.GET("/api/projects/{project_id}/checkpoints/{checkpoint_id}", {
    params: { path: { project_id: pid, checkpoint_id: parentId } } }))) as Checkpoint), [pid, parentId]);
  const deployments = useLoad(async () => (await call(client.GET("/api/projects/{project_id}/deployments", { params: { path: { project_id: pid }, query: { checkpoint_id: cid, limit: 100 } } }))) as Page<Deployment>, [pid, cid]);
  const jobs = useModelEvents(pid, () => {
    void ck.reload();
    void deployments.reload();
  });
  const { job, steps } = useTrainingJob(ck.data?.job_id ?? null, () => void ck.reload());
  useRefreshWhile(ck.data?.status === "training" || (deployments.data?.items ?? []).some((d) => d.status === "building"), () => {
    void ck.reload();
    void deployments.reload();
  });

  if (ck.error && !ck.data) return <div class="page"><h1>Checkpoint {cid}</h1><ErrorBox error={ck.error} /></div>;
  const c = ck.data;
  if (!c) return <div class="page"><Loading what="the checkpoint" /></div>;
  const curve: EpochEntry[] = (job?.details?.curve as EpochEntry[] | undefined)?.length && c.status === "training"
    ? (job!.details.curve as EpochEntry[]) : (c.curve ?? []);
  return (
    <div class="page" data-testid="checkpoint-page" data-status={c.status}>
      <div class="title-row">
        <h1>{c.name || `checkpoint ${c.id}`}</h1>
        <span class="muted">#{c.id}</span>
        <Status value={c.status} />
        <div class="spacer" />
        {c.has_weights && <a class="button" href={`/api/projects/${pid}/checkpoints/${c.id}/weights`} download>Weights (.keras)</a>}
      </div>
      <Lineage pid={pid} c={c} lineage={lineage} />
      {c.status === "training" && job && (
        <Section title="Training" actions={mayCancel(job) && <CancelButton job={job} />}>
          <Progress value={job.progress} status="running" />
          <p class="message" data-testid="training-message">{job.message}</p>
        </Section>
      )}
      <Curves curve={curve} parent={parent.data?.curve ?? []} parentName={parent.data?.name} steps={steps} />
      <div class="grid2">
        <Section title="Metrics"><Json value={c.metrics} /></Section>
        <Section title="Training params"><Json value={c.params} /></Section>
      </div>
      <div class="grid2">
        {may(pid, "annotator") && <Fork pid={pid} c={c} />}
        {may(pid, "annotator") && (c.status === "fresh" || c.status === "failed") && (
          <Train pid={pid} c={c} onStarted={() => void ck.reload()} />
        )}
        {may(pid, "admin") && c.status === "trained" && <Deploy pid={pid} c={c} onStarted={() => void deployments.reload()} />}
      </div>
      <Deployments pid={pid} page={deployments.data} error={deployments.error} jobs={jobs} checkpoint={c.id}
        onChange={() => void deployments.reload()} />
    </div>
  );
}

/** The training job live: its latest state, and every step report seen since the page opened. */
function useTrainingJob(jobId: string | null, onEnd: () => void) {
  const [job, setJob] = useState<Job | null>(null);
  const [steps, setSteps] = useState<{ x: number; report: StepReport }[]>([]);
  const seen = useRef<{ x: number; report: StepReport }[]>([]);
  useEffect(() => {
    setJob(null);
    seen.current = [];
    setSteps([]);
    if (!jobId) return;
    const take = (j: Job) => {
      const s = j.details?.step;
      if (s) {
        const x = (s.epoch - 1) * s.steps + s.step;
        const list = seen.current;
        if (!list.length || list[list.length - 1].x < x) list.push({ x, report: s });
        else if (list[list.length - 1].x > x) seen.current = [...list.filter((p) => p.x < x), { x, report: s }]; // resumed
      }
    };
    const batcher = new JobBatcher((batch) => {
      const j = batch.get(jobId);
      if (!j) return;
      setJob(j);
      setSteps(seen.current.slice());
      if (j.status !== "running" && j.status !== "queued") onEnd();
    });
    const read = () => void call(client.GET("/api/jobs/{job_id}", { params: { path: { job_id: jobId } } }))
      .then((j) => {
        take(j as Job);
        setJob(j as Job);
        setSteps(seen.current.slice());
      }).catch(() => undefined);
    const unsubscribe = subscribe({ room: { job: jobId }, onJob: (j) => { take(j); batcher.push(j); }, onJoined: read });
    return () => {
      batcher.stop();
      unsubscribe();
    };
  }, [jobId]);
  return { job, steps };
}

function CancelButton({ job }: { job: Job }) {
  const action = useAction(() => cancelJob(job.id));
  return (
    <>
      <button type="button" class="danger" disabled={action.busy || job.cancel_requested} onClick={() => void action.run()}>
        {job.cancel_requested ? "Cancelling…" : "Cancel training"}
      </button>
      <ErrorBox error={action.error} />
    </>
  );
}

function Lineage({ pid, c, lineage }: { pid: number; c: Checkpoint; lineage: Lineage | null }) {
  return (
    <Section title="Lineage">
      <div class="lineage" data-testid="lineage">
        {(lineage?.ancestors ?? []).map((a) => (
          <>
            <a href={`/projects/${pid}/checkpoints/${a.id}`} class="crumb" data-ancestor={a.id}>{a.name || `#${a.id}`} <Status value={a.status} /></a>
            <span class="arrow">→</span>
          </>
        ))}
        <span class="crumb current">{c.name || `#${c.id}`}</span>
        {(lineage?.children ?? []).length > 0 && <span class="arrow">→</span>}
        {(lineage?.children ?? []).map((id) => (
          <a href={`/projects/${pid}/checkpoints/${id}`} class="crumb" data-child={id}>#{id}</a>
        ))}
      </div>
      <KeyValues rows={[
        ["architecture", `${c.architecture} (${c.task}), ${c.input_size} px input`],
        ["source", c.source],
        ["label map", lineage?.label_map ? `${lineage.label_map.name} (#${lineage.label_map.id}): ${lineage.label_map.classes.map((k) => k.name).join(", ")}` : "–"],
        ["trained on", lineage?.dataset ? (
          lineage.dataset.cached ? <a href={`/datasets/${lineage.dataset.key}`}>{lineage.dataset.name} ({lineage.dataset.handler})</a>
            : <span><code>{lineage.dataset.key.slice(0, 12)}</code> (no longer cached)</span>
        ) : "–"],
        ["epochs done", c.epochs_done],
        ["device", c.device ? String((c.device as Record<string, unknown>).name ?? JSON.stringify(c.device)) : "–"],
        ["made by", lineage?.created_by?.name ?? "–"],
        ["created · trained", `${when(c.created_at)} · ${when(c.trained_at)}`],
      ]} />
    </Section>
  );
}

function Curves({ curve, parent, parentName, steps }: {
  curve: EpochEntry[];
  parent: EpochEntry[];
  parentName?: string;
  steps: { x: number; report: StepReport }[];
}) {
  const epochs = [...new Set([...curve, ...parent].map((e) => e.epoch))].sort((a, b) => a - b);
  const at = (list: EpochEntry[], key: string) => epochs.map((x) => {
    const e = list.find((p) => p.epoch === x);
    return typeof e?.[key] === "number" ? (e[key] as number) : null;
  });
  const skip = new Set(["epoch", "seconds", "samples_per_s"]);
  const keys = [...new Set([...curve, ...parent].flatMap((e) => Object.keys(e)).filter((k) => !skip.has(k)))];
  const losses = keys.filter((k) => k.endsWith("loss"));
  const metrics = keys.filter((k) => !k.endsWith("loss"));
  const series = (names: string[]): Series[] => names.flatMap((k, i) => [
    ...(curve.length || !parent.length ? [{ label: k, color: COLORS[i % COLORS.length], values: at(curve, k) }] : []),
    ...(parent.length ? [{ label: `${k} (parent${parentName ? ` ${parentName}` : ""})`, color: COLORS[i % COLORS.length], dash: [6, 4], values: at(parent, k) }] : []),
  ]);
  const stepKeys = [...new Set(steps.flatMap((s) => Object.keys(s.report)))]
    .filter((k) => !["epoch", "epochs", "step", "steps", "samples_per_s", "eta_s"].includes(k));
  return (
    <Section title="Training curves">
      {curve.length === 0 && steps.length === 0 && <p class="muted">Not trained yet{parent.length ? "; the parent's curve is dashed" : ""}.</p>}
      {(curve.length > 0 || steps.length > 0 || parent.length > 0) && (
        <div class="charts">
          {losses.length > 0 && (
            <div class="chart-box wide" data-chart="loss"><h3>Loss per epoch</h3>
              <LineChart x={epochs} series={series(losses)} xLabel="epoch" /></div>
          )}
          {metrics.length > 0 && (
            <div class="chart-box wide" data-chart="metrics"><h3>Metrics per epoch</h3>
              <LineChart x={epochs} series={series(metrics)} xLabel="epoch" /></div>
          )}
          {steps.length > 0 && (
            <div class="chart-box wide" data-chart="steps" data-testid="step-chart"><h3>Live: per step (since this page opened)</h3>
              <LineChart x={steps.map((s) => s.x)} xLabel="step"
                series={stepKeys.map((k, i) => ({ label: k, color: COLORS[i % COLORS.length], values: steps.map((s) => s.report[k] ?? null) }))} />
            </div>
          )}
        </div>
      )}
    </Section>
  );
}

function Fork({ pid, c }: { pid: number; c: Checkpoint }) {
  const [name, setName] = useState("");
  const fork = useAction(async () => {
    const child = await call(client.POST("/api/projects/{project_id}/checkpoints/{checkpoint_id}/fork", {
      params: { path: { project_id: pid, checkpoint_id: c.id } }, body: { name: name.trim() } }));
    navigate(`/projects/${pid}/checkpoints/${child.id}`);
  });
  return (
    <Section title="Fork">
      <p class="muted">A child that starts from these weights{c.status === "trained" ? "" : " (the initial ones until this one is trained)"}.</p>
      <form class="form inline" noValidate onSubmit={(e) => {
        e.preventDefault();
        void fork.run();
      }}>
        <Field name="name" label="Name of the child" error={fork.error}>
          <input name="fork-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <button type="submit" class="primary" disabled={fork.busy}>Fork</button>
      </form>
      <ErrorBox error={fork.error} />
    </Section>
  );
}

let trainOptions: Promise<Record<string, HandlerOption>> | null = null;

/** The train request's fields, from the API's own document (TrainIn): types, ranges, defaults, help. */
function loadTrainOptions(): Promise<Record<string, HandlerOption>> {
  trainOptions ??= raw<{ components: { schemas: Record<string, never> } }>("GET", "/api/openapi.json")
    .then((doc) => optionsFromSchema(doc, "TrainIn", ["dataset_key"]))
    .catch((exc) => {
      trainOptions = null;
      throw exc;
    });
  return trainOptions;
}

function Train({ pid, c, onStarted }: { pid: number; c: Checkpoint; onStarted: () => void }) {
  const options = useLoad(loadTrainOptions, []);
  const datasets = useLoad(async () => {
    const arch = (await architectures()).find((a) => a.name === c.architecture);
    return trainableDatasets(pid, arch);
  }, [pid, c.architecture]);
  const [edited, setValues] = useState<Values | null>(null);
  const [chosen, setDataset] = useState("");
  const values = edited ?? (options.data ? defaults(options.data) : {});
  const dataset = chosen || datasets.data?.[0]?.key || "";
  const train = useAction(async () => {
    const body = nest(changed(options.data ?? {}, values));
    await call(client.POST("/api/projects/{project_id}/checkpoints/{checkpoint_id}/train", {
      params: { path: { project_id: pid, checkpoint_id: c.id } },
      body: { dataset_key: dataset, ...body } as never,
    }));
    onStarted();
  });
  return (
    <Section title="Train">
      <ErrorBox error={options.error ?? datasets.error} />
      {!options.data ? <Loading /> : (
        <form class="form" noValidate data-testid="train-form" onSubmit={(e) => {
          e.preventDefault();
          void train.run();
        }}>
          <Field name="dataset_key" label="Dataset" error={train.error}
            help={`ready datasets this architecture trains on (${c.architecture})`}>
            <select name="dataset_key" value={dataset} onChange={(e) => setDataset(e.currentTarget.value)}>
              {(datasets.data ?? []).map((d: Dataset) => <option value={d.key}>{d.name} · {d.handler} · {d.key.slice(0, 8)}</option>)}
            </select>
          </Field>
          <OptionsForm options={options.data} values={values} onChange={setValues} error={train.error} prefix="" />
          <ErrorBox error={train.error} />
          <button type="submit" class="primary" disabled={train.busy || !dataset}>Train</button>
        </form>
      )}
    </Section>
  );
}

function Deploy({ pid, c, onStarted }: { pid: number; c: Checkpoint; onStarted: () => void }) {
  const [activate, setActivate] = useState(true);
  const [started, setStarted] = useState<Deployment | null>(null);
  const deploy = useAction(async () => {
    const d = await call(client.POST("/api/projects/{project_id}/deployments", {
      params: { path: { project_id: pid } }, body: { checkpoint_id: c.id, activate } }));
    setStarted(d as Deployment);
    onStarted();
  });
  return (
    <Section title="Deploy">
      <p class="muted">Exports ONNX, checks it against Keras on sample inputs, and (if asked) makes it the active {c.task} model.</p>
      <form class="form inline" onSubmit={(e) => {
        e.preventDefault();
        void deploy.run();
      }}>
        <label class="check"><input type="checkbox" checked={activate} onChange={(e) => setActivate(e.currentTarget.checked)} /> activate when ready</label>
        <button type="submit" class="primary" disabled={deploy.busy}>Deploy</button>
      </form>
      <ErrorBox error={deploy.error} />
      {started && <p class="muted">Deployment #{started.id} requested: its row below follows the build live.</p>}
    </Section>
  );
}
