import { useEffect, useState } from "preact/hooks";
import { call, client } from "../api/client";
import type { CheckpointNode, Deployment, Job, LabelMap, Page } from "../api/types";
import { ErrorBox, Field, Loading, Pager, Progress, Section, Status } from "../components/ui";
import { num, when } from "../lib/format";
import { useAction, useLoad, useRefreshWhile } from "../lib/hooks";
import { JobBatcher, subscribe } from "../lib/live";
import { architectures, keyMetric } from "../lib/models";
import { ProjectPicker, projectParam } from "../lib/projects";
import { navigate } from "../lib/router";
import { may } from "../lib/session";

/** Job events of a project that change its model tree or deployments: re-read them when one ends. */
export function useModelEvents(pid: number | null, onEnd: () => void): Map<string, Job> {
  const [jobs, setJobs] = useState<Map<string, Job>>(new Map());
  useEffect(() => {
    if (pid == null) return;
    let reread: number | undefined;
    const again = () => {
      window.clearTimeout(reread);
      reread = window.setTimeout(onEnd, 100);
    };
    const batcher = new JobBatcher((batch) => {
      const ours = [...batch.values()].filter((j) => j.kind === "checkpoint.train" || j.kind === "deployment.build");
      if (!ours.length) return;
      setJobs((m) => {
        const next = new Map(m);
        for (const j of ours) next.set(j.id, j);
        return next;
      });
      if (ours.some((j) => j.status !== "running")) again();
    });
    const unsubscribe = subscribe({ room: { project: pid }, onJob: batcher.push, onJoined: again });
    return () => {
      window.clearTimeout(reread);
      batcher.stop();
      unsubscribe();
    };
  }, [pid]);
  return jobs;
}

export function Models() {
  const pid = projectParam("first");
  if (pid == null) {
    return <div class="page"><h1>Models</h1><p class="muted">You are in no project yet.</p></div>;
  }
  return <ModelsOf pid={pid} />;
}

function ModelsOf({ pid }: { pid: number }) {
  const path = { project_id: pid };
  const tree = useLoad(async () => ((await call(client.GET("/api/projects/{project_id}/checkpoints/tree", { params: { path } }))).roots ?? []) as CheckpointNode[], [pid]);
  const [offset, setOffset] = useState(0);
  const deployments = useLoad(async () => (await call(client.GET("/api/projects/{project_id}/deployments", { params: { path, query: { limit: DEPLOYMENTS, offset } } }))) as Page<Deployment>, [pid, offset]);
  const jobs = useModelEvents(pid, () => {
    void tree.reload();
    void deployments.reload();
  });
  const busy = (deployments.data?.items ?? []).some((d) => d.status === "building") || hasTraining(tree.data ?? []);
  useRefreshWhile(busy, () => {
    void tree.reload();
    void deployments.reload();
  });
  return (
    <div class="page">
      <div class="title-row">
        <h1>Models</h1>
        <div class="spacer" />
        <ProjectPicker value={pid} allowAll={false} />
      </div>
      <Section title="Model tree">
        <ErrorBox error={tree.error} />
        {!tree.data && !tree.error && <Loading what="the model tree" />}
        {tree.data && tree.data.length === 0 && <p class="muted">No checkpoints yet: make a root below.</p>}
        {tree.data && tree.data.length > 0 && (
          <ul class="tree" data-testid="model-tree">
            {tree.data.map((n) => <TreeNode pid={pid} node={n} jobs={jobs} />)}
          </ul>
        )}
      </Section>
      {may(pid, "annotator") && <NewRoot pid={pid} onMade={() => void tree.reload()} />}
      <Deployments pid={pid} page={deployments.data} error={deployments.error} jobs={jobs} onChange={() => void deployments.reload()}
        offset={offset} onPage={setOffset} />
    </div>
  );
}

function hasTraining(nodes: CheckpointNode[]): boolean {
  return nodes.some((n) => n.status === "training" || hasTraining(n.children ?? []));
}

function TreeNode({ pid, node, jobs }: { pid: number; node: CheckpointNode; jobs: Map<string, Job> }) {
  const metric = keyMetric(node);
  const job = node.job_id ? jobs.get(node.job_id) : undefined;
  return (
    <li>
      <div class={`node n-${node.status}`} data-checkpoint={node.id} data-status={node.status}>
        <a href={`/projects/${pid}/checkpoints/${node.id}`} class="node-name">{node.name || `checkpoint ${node.id}`}</a>
        <span class="muted">#{node.id}</span>
        <Status value={node.status} />
        <span class="muted small">{node.architecture} · {node.source}</span>
        {metric && <span class="metric">{metric[0]} <strong>{num(metric[1])}</strong></span>}
        {node.status === "training" && job && <Progress value={job.progress} status="running" />}
      </div>
      {node.children && node.children.length > 0 && (
        <ul>{node.children.map((c) => <TreeNode pid={pid} node={c} jobs={jobs} />)}</ul>
      )}
    </li>
  );
}

function NewRoot({ pid, onMade }: { pid: number; onMade: () => void }) {
  const archs = useLoad(architectures, []);
  const maps = useLoad(async () => ((await call(client.GET("/api/projects/{project_id}/label-maps", {
    params: { path: { project_id: pid }, query: { limit: 500 } } }))) as Page<LabelMap>).items, [pid]);
  const [arch, setArch] = useState("box_suggester");
  const [name, setName] = useState("");
  const [chosenMap, setLabelMap] = useState<number | null>(null);
  const [size, setSize] = useState("");
  const labelMap = chosenMap ?? maps.data?.[0]?.id ?? null;
  const a = archs.data?.find((x) => x.name === arch);
  const make = useAction(async () => {
    const made = await call(client.POST("/api/projects/{project_id}/checkpoints", {
      params: { path: { project_id: pid } },
      body: { architecture: arch as "box_suggester", label_map_id: labelMap ?? 0, name: name.trim() || "root", seed: 0,
        ...(size ? { input_size: Number(size) } : {}) },
    }));
    onMade();
    navigate(`/projects/${pid}/checkpoints/${made.id}`);
  });
  return (
    <Section title="New root">
      <form class="form inline" noValidate onSubmit={(e) => {
        e.preventDefault();
        void make.run();
      }}>
        <Field name="architecture" label="Architecture" error={make.error} help={a?.description}>
          <select name="architecture" value={arch} onChange={(e) => setArch(e.currentTarget.value)}>
            {(archs.data ?? []).map((x) => <option value={x.name}>{x.name} ({x.task})</option>)}
          </select>
        </Field>
        <Field name="label_map_id" label="Label map" error={make.error}>
          <select name="label_map_id" value={labelMap ?? ""} onChange={(e) => setLabelMap(Number(e.currentTarget.value))}>
            {(maps.data ?? []).map((m) => <option value={m.id}>{m.name} (#{m.id})</option>)}
          </select>
        </Field>
        <Field name="input_size" label="Input size" error={make.error}
          help={a ? `${a.input.min_size}–${a.input.max_size}, default ${a.input.default_size}` : undefined}>
          <input name="input_size" type="number" step={16} value={size} placeholder={String(a?.input.default_size ?? "")}
            onInput={(e) => setSize(e.currentTarget.value)} />
        </Field>
        <Field name="name" label="Name" error={make.error}>
          <input name="name" value={name} placeholder="root" onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <button type="submit" class="primary" disabled={make.busy || labelMap == null}>Make root</button>
      </form>
      <ErrorBox error={make.error} />
    </Section>
  );
}

export const DEPLOYMENTS = 25;

export function Deployments({ pid, page, error, jobs, onChange, checkpoint, offset = 0, onPage }: {
  pid: number;
  page: Page<Deployment> | undefined;
  error: Error | null;
  jobs: Map<string, Job>;
  onChange: () => void;
  checkpoint?: number;
  offset?: number;
  onPage?: (offset: number) => void;
}) {
  const admin = may(pid, "admin");
  const activate = useAction(async (id: number) => {
    await call(client.POST("/api/projects/{project_id}/deployments/{deployment_id}/activate", {
      params: { path: { project_id: pid, deployment_id: id } } }));
    onChange();
  });
  const items = (page?.items ?? []).filter((d) => checkpoint == null || d.checkpoint_id === checkpoint);
  const activeId = new Map((page?.items ?? []).filter((d) => d.active).map((d) => [d.task, d.id]));
  return (
    <Section title={checkpoint == null ? "Deployments" : "Deployments of this checkpoint"}>
      <ErrorBox error={(error as never) ?? activate.error} />
      {!page && !error && <Loading what="deployments" />}
      {page && (
        <table class="table" data-testid="deployments">
          <thead>
            <tr>
              <th>Deployment</th><th>Checkpoint</th><th>Task</th><th>Status</th><th>Active</th>
              <th class="num">ONNX max |Δ|</th><th>Created</th><th>Activated</th><th />
            </tr>
          </thead>
          <tbody>
            {items.map((d) => {
              const job = d.job_id ? jobs.get(d.job_id) : undefined;
              const current = activeId.get(d.task);
              const older = current != null && d.id < current;
              return (
                <tr data-deployment={d.id} data-active={d.active ? "true" : "false"} data-status={d.status} class={d.active ? "active-row" : ""}>
                  <td>#{d.id}</td>
                  <td><a href={`/projects/${pid}/checkpoints/${d.checkpoint_id}`}>#{d.checkpoint_id}</a></td>
                  <td>{d.task}</td>
                  <td>
                    <Status value={d.status} />
                    {d.status === "building" && job && <Progress value={job.progress} status="running" />}
                    {d.error && <div class="error-text small">{d.error}</div>}
                  </td>
                  <td>{d.active ? <span class="badge active">● active</span> : <span class="muted">–</span>}</td>
                  <td class="num">{d.max_abs_diff == null ? "–" : d.max_abs_diff.toExponential(2)}</td>
                  <td class="muted nowrap">{when(d.created_at)}</td>
                  <td class="muted nowrap">{when(d.activated_at)}</td>
                  <td class="right nowrap">
                    {d.has_model && <a class="button small" href={`/api/projects/${pid}/deployments/${d.id}/model`} download>ONNX</a>}
                    {admin && d.status === "ready" && !d.active && (
                      <button type="button" class="small" disabled={activate.busy} onClick={() => void activate.run(d.id)}>
                        {older ? "Roll back to this" : "Activate"}
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
            {items.length === 0 && <tr><td colSpan={9} class="muted">No deployments.</td></tr>}
          </tbody>
        </table>
      )}
      {page && onPage && <Pager total={page.total} limit={DEPLOYMENTS} offset={offset} onPage={onPage} />}
    </Section>
  );
}
