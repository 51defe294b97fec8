import { useState } from "preact/hooks";
import { call, client } from "../api/client";
import type { Page, Project } from "../api/types";
import { ErrorBox, Field, Loading, Pager, Section } from "../components/ui";
import { useAction, useLoad } from "../lib/hooks";
import { navigate, query, withQuery } from "../lib/router";
import { refreshMemberships } from "../lib/session";
import { when } from "../lib/format";

const LIMIT = 25;

export function Projects() {
  const offset = Number(query().get("offset") ?? 0);
  const list = useLoad(
    () => call(client.GET("/api/projects", { params: { query: { limit: LIMIT, offset } } })) as Promise<Page<Project>>,
    [offset],
  );
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const create = useAction(async () => {
    const project = await call(client.POST("/api/projects", { body: { name, description } }));
    await refreshMemberships();
    navigate(`/projects/${project.id}`);
  });

  return (
    <div class="page">
      <h1>Projects</h1>
      <Section title="Your projects">
        <ErrorBox error={list.error} />
        {!list.data && !list.error && <Loading />}
        {list.data && (
          <>
            <table class="table" data-testid="projects">
              <thead>
                <tr><th>Name</th><th>Description</th><th>Your role</th><th>Images</th><th>Created</th></tr>
              </thead>
              <tbody>
                {list.data.items.map((p) => (
                  <tr>
                    <td><a href={`/projects/${p.id}`}>{p.name}</a></td>
                    <td class="muted clip">{p.description || "–"}</td>
                    <td><span class={`role r-${p.role}`}>{p.role}</span></td>
                    <td class="num">{(p.stats?.images as number | undefined) ?? "–"}</td>
                    <td class="muted">{when(p.created_at)}</td>
                  </tr>
                ))}
                {list.data.items.length === 0 && (
                  <tr><td colSpan={5} class="muted">No projects yet: create one below.</td></tr>
                )}
              </tbody>
            </table>
            <Pager total={list.data.total} limit={LIMIT} offset={offset} onPage={(o) => navigate(withQuery({ offset: o }))} />
          </>
        )}
      </Section>
      <Section title="New project">
        <form
          class="form inline"
          onSubmit={(e) => {
            e.preventDefault();
            void create.run();
          }}
        >
          <Field name="name" label="Name" error={create.error}>
            <input name="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          <Field name="description" label="Description" error={create.error}>
            <input name="description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
          </Field>
          <button type="submit" class="primary" disabled={create.busy}>Create</button>
        </form>
        <ErrorBox error={create.error} />
      </Section>
    </div>
  );
}
