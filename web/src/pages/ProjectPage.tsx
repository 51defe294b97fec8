import { useState } from "preact/hooks";
import { call, client } from "../api/client";
import type { LabelClass, LabelMap, Member, Page, Project, Role } from "../api/types";
import { Bars, ErrorBox, Field, Loading, Pager, Section } from "../components/ui";
import { useAction, useLoad } from "../lib/hooks";
import { may, refreshMemberships, user } from "../lib/session";
import { when } from "../lib/format";

const ROLES: Role[] = ["viewer", "annotator", "admin"];

export function ProjectPage({ pid }: { pid: number }) {
  const path = { project_id: pid };
  const project = useLoad(() => call(client.GET("/api/projects/{project_id}", { params: { path } })) as Promise<Project>, [pid]);
  if (project.error) {
    return (
      <div class="page">
        <h1>Project {pid}</h1>
        <ErrorBox error={project.error} />
      </div>
    );
  }
  if (!project.data) return <div class="page"><Loading what="the project" /></div>;
  const p = project.data;
  return (
    <div class="page">
      <div class="title-row">
        <h1>{p.name}</h1>
        <span class={`role r-${p.role}`}>{p.role}</span>
        <nav class="sub">
          <a href={`/projects/${pid}/images`}>Images</a>
          <a href={`/projects/${pid}/upload`}>Upload</a>
          <a href={`/projects/${pid}/review`}>Review</a>
          <a href={`/projects/${pid}/examples`}>Class examples</a>
          <a href={`/projects/${pid}/try`}>Try the model</a>
          <a href={`/jobs?project=${pid}`}>Jobs</a>
          <a href={`/datasets?project=${pid}`}>Datasets</a>
          <a href={`/models?project=${pid}`}>Models</a>
        </nav>
      </div>
      {p.description && <p class="muted">{p.description}</p>}
      <Overview pid={pid} />
      <div class="grid2">
        <Classes pid={pid} />
        <LabelMaps pid={pid} />
      </div>
      <Members pid={pid} role={p.role} />
    </div>
  );
}

function Overview({ pid }: { pid: number }) {
  const path = { project_id: pid };
  const stats = useLoad(() => call(client.GET("/api/projects/{project_id}/stats/classes", { params: { path } })), [pid]);
  const failed = useLoad(
    () => call(client.GET("/api/projects/{project_id}/failed-cases", { params: { path, query: { limit: 1 } } })),
    [pid],
  );
  const s = stats.data;
  const images = s?.images ?? 0;
  const annotated = images - (s?.images_without_boxes ?? 0);
  const boxes = (s?.classes ?? []).reduce((n, c) => n + (c.boxes ?? 0), 0);
  return (
    <Section title="Overview">
      <ErrorBox error={stats.error ?? failed.error} />
      {!s ? <Loading /> : (
        <>
          <div class="tiles" data-testid="overview">
            <Tile label="Images" value={images} />
            <Tile label="Annotated images" value={annotated} />
            <Tile label="Boxes (accepted)" value={boxes} />
            <Tile label="Failed cases" value={failed.data?.total ?? "–"} />
          </div>
          <h3>Boxes per class</h3>
          <Bars label="boxes per class" data={(s.classes ?? []).map((c) => [c.group ? `${c.group} / ${c.name}` : c.name ?? "?", c.boxes ?? 0])} />
        </>
      )}
    </Section>
  );
}

function Tile({ label, value }: { label: string; value: number | string }) {
  return (
    <div class="tile" data-tile={label}>
      <div class="tile-value">{typeof value === "number" ? value.toLocaleString("en") : value}</div>
      <div class="tile-label">{label}</div>
    </div>
  );
}

const CLASSES = 200;
const MAPS = 20;
const MEMBERS = 50;

function Classes({ pid }: { pid: number }) {
  const [offset, setOffset] = useState(0);
  const classes = useLoad(
    () => call(client.GET("/api/projects/{project_id}/classes", { params: { path: { project_id: pid }, query: { limit: CLASSES, offset } } })) as Promise<Page<LabelClass>>,
    [pid, offset],
  );
  const groups = new Map<string, LabelClass[]>();
  for (const c of classes.data?.items ?? []) {
    const g = c.group ?? "";
    groups.set(g, [...(groups.get(g) ?? []), c]);
  }
  const ordered = [...groups.entries()].sort(([a], [b]) => (a === "" ? 1 : b === "" ? -1 : a.localeCompare(b)));
  return (
    <Section title="Classes">
      <ErrorBox error={classes.error} />
      {!classes.data && !classes.error && <Loading />}
      {classes.data && classes.data.items.length === 0 && <p class="muted">No classes yet.</p>}
      <div class="groups" data-testid="class-groups">
        {ordered.map(([group, items]) => (
          <div class="group" data-group={group || "(no group)"}>
            <h4>{group || "no group"}</h4>
            <ul class="chips">
              {items.map((c) => (
                <li class="chip">
                  {c.color && <span class="swatch" style={{ background: c.color }} />}
                  {c.name}
                </li>
              ))}
            </ul>
          </div>
        ))}
      </div>
      {classes.data && classes.data.total > CLASSES && (
        <Pager total={classes.data.total} limit={CLASSES} offset={offset} onPage={setOffset} />
      )}
    </Section>
  );
}

function LabelMaps({ pid }: { pid: number }) {
  const [offset, setOffset] = useState(0);
  const maps = useLoad(
    () => call(client.GET("/api/projects/{project_id}/label-maps", { params: { path: { project_id: pid }, query: { limit: MAPS, offset } } })) as Promise<Page<LabelMap>>,
    [pid, offset],
  );
  return (
    <Section title="Label maps">
      <ErrorBox error={maps.error} />
      {!maps.data && !maps.error && <Loading />}
      {maps.data && (
        <table class="table compact">
          <thead><tr><th>Name</th><th>Classes (id in the map: name)</th><th>Updated</th></tr></thead>
          <tbody>
            {maps.data.items.map((m) => (
              <tr>
                <td>{m.name} <span class="muted">#{m.id}</span></td>
                <td>{m.entries.map((e) => `${e.id}: ${e.name}`).join(", ")}</td>
                <td class="muted">{when(m.updated_at)}</td>
              </tr>
            ))}
            {maps.data.items.length === 0 && <tr><td colSpan={3} class="muted">No label maps yet.</td></tr>}
          </tbody>
        </table>
      )}
      {maps.data && maps.data.total > MAPS && <Pager total={maps.data.total} limit={MAPS} offset={offset} onPage={setOffset} />}
    </Section>
  );
}

function Members({ pid, role }: { pid: number; role: Role }) {
  const path = { project_id: pid };
  const [offset, setOffset] = useState(0);
  const members = useLoad(
    () => call(client.GET("/api/projects/{project_id}/members", { params: { path, query: { limit: MEMBERS, offset } } })) as Promise<Page<Member>>,
    [pid, offset],
  );
  const admin = role === "admin" || may(pid, "admin");
  const [name, setName] = useState("");
  const [newRole, setNewRole] = useState<Role>("viewer");
  const put = useAction(async (userName: string, r: Role) => {
    await call(client.PUT("/api/projects/{project_id}/members/{user_name}", {
      params: { path: { ...path, user_name: userName } }, body: { role: r } }));
    await members.reload();
    if (userName === user.value?.name) await refreshMemberships();
  });
  const remove = useAction(async (userName: string) => {
    await call(client.DELETE("/api/projects/{project_id}/members/{user_name}", { params: { path: { ...path, user_name: userName } } }));
    await members.reload();
    if (userName === user.value?.name) await refreshMemberships();
  });
  return (
    <Section title="Members">
      <ErrorBox error={members.error ?? put.error ?? remove.error} />
      {members.data && (
        <table class="table" data-testid="members">
          <thead><tr><th>User</th><th>Role</th><th>Since</th>{admin && <th />}</tr></thead>
          <tbody>
            {members.data.items.map((m) => (
              <tr data-member={m.user.name}>
                <td>{m.user.name}</td>
                <td>
                  {admin ? (
                    <select value={m.role} aria-label={`role of ${m.user.name}`}
                      onChange={(e) => void put.run(m.user.name ?? "", e.currentTarget.value as Role)}>
                      {ROLES.map((r) => <option value={r}>{r}</option>)}
                    </select>
                  ) : <span class={`role r-${m.role}`}>{m.role}</span>}
                </td>
                <td class="muted">{when(m.created_at)}</td>
                {admin && (
                  <td class="right">
                    <button type="button" class="danger small" onClick={() => void remove.run(m.user.name ?? "")}>Remove</button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {members.data && members.data.total > MEMBERS && <Pager total={members.data.total} limit={MEMBERS} offset={offset} onPage={setOffset} />}
      {admin && (
        <form class="form inline" onSubmit={(e) => {
          e.preventDefault();
          void put.run(name.trim(), newRole).then(() => setName(""));
        }}>
          <Field name="user_name" label="Add a member (user name)" error={put.error}>
            <input name="user_name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          <Field name="role" label="Role" error={put.error}>
            <select name="role" value={newRole} onChange={(e) => setNewRole(e.currentTarget.value as Role)}>
              {ROLES.map((r) => <option value={r}>{r}</option>)}
            </select>
          </Field>
          <button type="submit" class="primary" disabled={put.busy || !name.trim()}>Add</button>
        </form>
      )}
    </Section>
  );
}
