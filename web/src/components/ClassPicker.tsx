// The class picker: the first nine classes on keys 1–9, and a search that shows the classes grouped
// (logos under their brand), Enter picking the first match.
import { useMemo, useState } from "preact/hooks";
import { call, client } from "../api/client";
import { type ClassInfo, colorOf } from "./Stage";

export async function loadClasses(pid: number): Promise<ClassInfo[]> {
  const out: ClassInfo[] = [];
  for (let offset = 0; ; offset += 500) {
    const page = await call(client.GET("/api/projects/{project_id}/classes", {
      params: { path: { project_id: pid }, query: { limit: 500, offset } },
    }));
    out.push(...(page.items ?? []).map((c) => ({ id: c.id!, name: c.name!, group: c.group, color: c.color })));
    if (out.length >= (page.total ?? 0) || !(page.items ?? []).length) return out;
  }
}

export function ClassPicker({ classes, active, onPick, searchRef }: {
  classes: ClassInfo[];
  active: number | null;
  onPick: (id: number) => void;
  searchRef?: { current: HTMLInputElement | null };
}) {
  const [q, setQ] = useState("");
  const groups = useMemo(() => {
    const words = q.trim().toLowerCase();
    const hit = classes.filter((c) => !words || c.name.toLowerCase().includes(words) || (c.group ?? "").toLowerCase().includes(words));
    const by = new Map<string, ClassInfo[]>();
    for (const c of hit) {
      const g = c.group ?? "";
      if (!by.has(g)) by.set(g, []);
      by.get(g)!.push(c);
    }
    return [...by.entries()].sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b)));
  }, [classes, q]);
  const hotkey = new Map(classes.slice(0, 9).map((c, i) => [c.id, i + 1]));
  return (
    <div class="class-picker" data-testid="class-picker">
      <input ref={searchRef} type="search" name="class-search" placeholder="Search classes ( / )" value={q}
        onInput={(e) => setQ(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") {
            const first = groups[0]?.[1][0];
            if (first) onPick(first.id);
            setQ("");
            e.currentTarget.blur();
          } else if (e.key === "Escape") {
            setQ("");
            e.currentTarget.blur();
          }
        }} />
      <div class="class-groups">
        {groups.map(([g, items]) => (
          <div class="class-group" data-group={g}>
            {g && <div class="group-name">{g}</div>}
            {items.map((c) => (
              <button type="button" class={`class-item${c.id === active ? " on" : ""}`} data-class-id={c.id}
                onClick={() => onPick(c.id)}>
                <span class="swatch" style={{ background: colorOf(c) }} />
                <span class="name">{c.name}</span>
                {hotkey.has(c.id) && <kbd>{hotkey.get(c.id)}</kbd>}
              </button>
            ))}
          </div>
        ))}
        {!groups.length && <p class="muted small">no class matches</p>}
      </div>
    </div>
  );
}
