import type { ComponentChildren } from "preact";
import type { ApiError } from "../api/client";

/** The API's message for a failed action or load (role="alert" so tests and screen readers find it). */
export function ErrorBox({ error }: { error: ApiError | null | undefined }) {
  if (!error) return null;
  return (
    <div class="error" role="alert" data-status={error.status} data-code={error.code}>
      {error.message}
    </div>
  );
}

/** A labelled form field; marked invalid with the API's words when `error.fields` names it. */
export function Field({ name, label, error, help, children }: {
  name: string;
  label: string;
  error?: ApiError | null;
  help?: string;
  children: ComponentChildren;
}) {
  const problems = fieldProblems(error, name);
  return (
    <label class={`field${problems.length ? " invalid" : ""}`} data-field={name}>
      <span class="label">{label}</span>
      {children}
      {help && <span class="help">{help}</span>}
      {problems.length > 0 && <span class="field-error">{problems.join("; ")}</span>}
    </label>
  );
}

/** The problems the API names for `name` (or anything inside it, `config.size` under `config`). */
export function fieldProblems(error: ApiError | null | undefined, name: string): string[] {
  if (!error) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(error.fields)) {
    if (k === name || k.startsWith(`${name}.`)) out.push(...v);
  }
  return out;
}

export function Pager({ total, limit, offset, onPage }: {
  total: number;
  limit: number;
  offset: number;
  onPage: (offset: number) => void;
}) {
  if (total <= limit && offset === 0) return <div class="pager muted">{total} in all</div>;
  const page = Math.floor(offset / limit) + 1;
  const pages = Math.max(1, Math.ceil(total / limit));
  return (
    <div class="pager">
      <button type="button" disabled={offset <= 0} onClick={() => onPage(Math.max(0, offset - limit))}>‹ Previous</button>
      <span>
        page {page} of {pages} · {total.toLocaleString("en")} in all
      </span>
      <button type="button" disabled={offset + limit >= total} onClick={() => onPage(offset + limit)}>Next ›</button>
    </div>
  );
}

export function Progress({ value, status }: { value: number; status?: string }) {
  const pct = Math.round(Math.min(1, Math.max(0, value || 0)) * 100);
  return (
    <div class={`progress ${status ?? ""}`} role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
      <div class="bar" style={{ width: `${pct}%` }} />
      <span>{pct}%</span>
    </div>
  );
}

export function Status({ value }: { value: string | null | undefined }) {
  return <span class={`status s-${value ?? "none"}`}>{value ?? "–"}</span>;
}

export function Loading({ what = "" }: { what?: string }) {
  return <p class="muted loading">Loading{what ? ` ${what}` : ""}…</p>;
}

export function Section({ title, actions, children }: {
  title: string;
  actions?: ComponentChildren;
  children: ComponentChildren;
}) {
  return (
    <section class="card" data-section={title}>
      <header class="card-head">
        <h2>{title}</h2>
        {actions && <div class="actions">{actions}</div>}
      </header>
      {children}
    </section>
  );
}

export function KeyValues({ rows }: { rows: [string, ComponentChildren][] }) {
  return (
    <dl class="kv">
      {rows.map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </>
      ))}
    </dl>
  );
}

export function Json({ value }: { value: unknown }) {
  if (value == null || (typeof value === "object" && Object.keys(value as object).length === 0)) {
    return <span class="muted">–</span>;
  }
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

/** Horizontal bars as SVG: one per label, the value written at its end. */
export function Bars({ data, label, color = "var(--accent)" }: {
  data: [string, number][];
  label?: string;
  color?: string;
}) {
  if (!data.length) return <p class="muted">nothing to draw</p>;
  const max = Math.max(1, ...data.map(([, v]) => v));
  const row = 22;
  const labelW = Math.min(180, 12 + 7 * Math.max(...data.map(([k]) => k.length)));
  const width = 520;
  const barW = width - labelW - 60;
  return (
    <svg class="bars" role="img" aria-label={label} viewBox={`0 0 ${width} ${data.length * row + 4}`}
      width="100%" style={{ maxWidth: `${width}px` }}>
      {data.map(([k, v], i) => (
        <g transform={`translate(0 ${i * row + 2})`} data-bar={k} data-value={v}>
          <text x={labelW - 8} y={row / 2 + 4} text-anchor="end" class="bar-label">{k}</text>
          <rect x={labelW} y={3} height={row - 6} width={Math.max(1, (v / max) * barW)} fill={color} rx={2} />
          <text x={labelW + Math.max(1, (v / max) * barW) + 6} y={row / 2 + 4} class="bar-value">{v.toLocaleString("en")}</text>
        </g>
      ))}
    </svg>
  );
}

/** A bar of how much of something is used (the dataset cache's quota). */
export function Meter({ used, total, label }: { used: number; total: number | null; label: string }) {
  const pct = total ? Math.min(100, (used / total) * 100) : 0;
  return (
    <div class="meter" aria-label={label}>
      <div class="meter-bar">
        <div class={`fill ${pct > 90 ? "hot" : ""}`} style={{ width: `${total ? pct : 100}%` }} />
      </div>
    </div>
  );
}
