import { call, client, type Schemas } from "../api/client";
import type { Job } from "../api/types";
import { ms } from "./format";
import { may, user } from "./session";

export const KINDS: Schemas["JobIn"]["kind"][] = ["probe", "ingest", "dataset.build", "checkpoint.train", "deployment.build"];
export const QUEUES: NonNullable<Schemas["JobIn"]["queue"]>[] = ["inference", "augmentation", "training", "deployment"];
export const STATUSES: Job["status"][] = ["queued", "running", "succeeded", "failed", "cancelled"];

export const isLive = (job: Pick<Job, "status">) => job.status === "queued" || job.status === "running";

/** The submitter, a project admin or a superuser may cancel (api/jobs.py). */
export function mayCancel(job: Job): boolean {
  const me = user.value;
  if (!me || !isLive(job)) return false;
  return me.is_superuser || job.user_id === me.id || may(job.project_id, "admin");
}

export function mayRetry(job: Job): boolean {
  const me = user.value;
  if (!me || isLive(job)) return false;
  return job.project_id == null ? job.user_id === me.id || me.is_superuser : may(job.project_id, "annotator");
}

export async function cancelJob(id: string): Promise<Job> {
  return (await call(client.POST("/api/jobs/{job_id}/cancel", { params: { path: { job_id: id } } }))) as Job;
}

export async function retryJob(id: string): Promise<Job> {
  return (await call(client.POST("/api/jobs/{job_id}/retry", { params: { path: { job_id: id } } }))) as Job;
}

/** Seconds the job ran (so far, while it runs). */
export function runSeconds(job: Job, now: number): number | null {
  const start = ms(job.started_at);
  if (start == null) return null;
  const end = ms(job.finished_at) ?? (isLive(job) ? now : ms(job.updated_at));
  return end == null ? null : (end - start) / 1000;
}

/** Is `b` at least as new as `a`? (an event never overwrites a newer snapshot) */
export function newer(a: Job | undefined, b: Job): boolean {
  return !a || (b.updated_at ?? "") >= (a.updated_at ?? "");
}
