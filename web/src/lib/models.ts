import { call, client } from "../api/client";
import type { Checkpoint, Dataset, EpochEntry, Page } from "../api/types";

export interface Architecture {
  name: string;
  task: string;
  handlers: string[];
  description: string;
  input: { name: string; default_size: number; min_size: number; max_size: number };
}

export async function architectures(): Promise<Architecture[]> {
  return ((await call(client.GET("/api/architectures"))).items ?? []) as unknown as Architecture[];
}

/** The ready datasets of a project that an architecture trains on (`suggest@1` for the box suggester). */
export async function trainableDatasets(pid: number, arch: Architecture | undefined): Promise<Dataset[]> {
  const page = (await call(client.GET("/api/datasets", { params: { query: { project_id: pid, status: "ready", limit: 500 } } }))) as Page<Dataset>;
  return page.items.filter((d) => !arch || arch.handlers.includes(d.handler.split("@")[0]));
}

/** The figure a node shows: validation loss when there is one, else loss, else the first metric. */
export function keyMetric(c: Pick<Checkpoint, "metrics" | "curve">): [string, number] | null {
  const m = (c.metrics ?? {}) as Record<string, unknown>;
  for (const k of ["val_loss", "loss"]) if (typeof m[k] === "number") return [k, m[k] as number];
  const first = Object.entries(m).find(([, v]) => typeof v === "number");
  if (first) return [first[0], first[1] as number];
  const last = c.curve?.[c.curve.length - 1] as EpochEntry | undefined;
  if (last && typeof last.val_loss === "number") return ["val_loss", last.val_loss];
  return null;
}
