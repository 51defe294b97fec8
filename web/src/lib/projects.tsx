import { memberships } from "./session";
import { navigate, query, withQuery } from "./router";

/** The page's project: `?project=` when given, else `fallback` (null = all of mine). */
export function projectParam(fallback: "first" | "all" = "all"): number | null {
  const q = query().get("project");
  if (q) return Number(q);
  return fallback === "first" ? memberships.value[0]?.project_id ?? null : null;
}

export function ProjectPicker({ value, allowAll = true }: { value: number | null; allowAll?: boolean }) {
  return (
    <label class="picker">
      Project
      <select name="project" value={value ?? ""} onChange={(e) => navigate(withQuery({ project: e.currentTarget.value || null, offset: null }))}>
        {allowAll && <option value="">all of mine</option>}
        {memberships.value.map((m) => <option value={m.project_id}>{m.project}</option>)}
      </select>
    </label>
  );
}
