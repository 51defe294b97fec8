// Readable names for the generated schemas, with the loose `object` fields given the shapes the
// server documents in prose (README, ARCHITECTURE).
import type { Schemas } from "./client";

export type Role = "viewer" | "annotator" | "admin";
export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

type Loose = Record<string, unknown>;

export type Job = Omit<Required<Schemas["JobOut"]>, "details" | "params"> & {
  details: Loose & { step?: StepReport; curve?: EpochEntry[]; epoch_summary?: EpochEntry; device?: Loose };
  params: Loose;
};

export interface StepReport {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  loss?: number;
  samples_per_s?: number;
  eta_s?: number;
  [metric: string]: number | undefined;
}

export interface EpochEntry {
  epoch: number;
  [metric: string]: number | undefined;
}

export type User = Required<Schemas["UserOut"]>;
export type Session = Schemas["SessionOut"];
export interface Membership {
  project_id: number;
  project: string;
  role: Role;
}
export type Project = Omit<Required<Schemas["ProjectOut"]>, "stats"> & { stats: Loose };
export type Member = Required<Schemas["MembershipOut"]>;
export type LabelClass = Required<Schemas["ClassOut"]>;
export type LabelMap = Required<Schemas["LabelMapOut"]>;
export type Dataset = Required<Schemas["DatasetOut"]>;
export type Checkpoint = Omit<Required<Schemas["CheckpointOut"]>, "curve" | "job"> & {
  curve: EpochEntry[];
  job?: Job;
};
export type CheckpointNode = Omit<Checkpoint, "children"> & { children?: CheckpointNode[] };
export type Deployment = Omit<Required<Schemas["DeploymentOut"]>, "job"> & { job?: Job };

export interface WorkerInfo {
  name: string;
  pool: string;
  concurrency: number | null;
  active: { job_id: string; kind: string }[];
  versions: Record<string, string>;
}
export type Queue = Omit<Required<Schemas["QueueOut"]>, "workers"> & { workers?: WorkerInfo[] };

export interface HandlerOption {
  type: "int" | "float" | "bool" | "str" | "choice";
  default: unknown;
  help: string;
  min: number | null;
  max: number | null;
  choices: unknown[] | null;
}
export interface Handler {
  name: string;
  version: number;
  id: string;
  description: string;
  task: string;
  options: Record<string, HandlerOption>;
}

export interface Health {
  splits?: Record<string, { records: number; objects: number; classes: Record<string, number> }>;
  objects_per_image?: Record<string, number>;
  box_sizes?: Record<string, number>;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

const RANK: Record<Role, number> = { viewer: 0, annotator: 1, admin: 2 };

/** `store.schema.Role.allows`: a role allows what it needs or less. */
export function allows(role: Role | null | undefined, needed: Role): boolean {
  return role != null && RANK[role] >= RANK[needed];
}
