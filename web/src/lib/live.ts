// Live job events over Socket.IO (websocket transport, the session cookie authenticates). Pages join
// rooms ({"project": id} or {"job": id}); every room is joined again after a reconnect, and each
// page's `onJoined` re-reads its REST snapshot then, so nothing seen while away is missed.
import { signal } from "@preact/signals";
import { io, type Socket } from "socket.io-client";
import type { Job } from "../api/types";

export type Room = { project: number } | { job: string };

interface Subscription {
  room: Room;
  onJob: (job: Job) => void;
  onJoined?: () => void;
  onRefused?: (error: string) => void;
}

export const connected = signal(false);
let socket: Socket | null = null;
const subscriptions = new Set<Subscription>();
const joined = new Map<string, number>(); // room key -> subscribers

const key = (room: Room) => ("project" in room ? `project:${room.project}` : `job:${room.job}`);

function join(sub: Subscription): void {
  socket?.emit("join", sub.room, (answer: { ok: boolean; error?: string } | undefined) => {
    if (answer?.ok) sub.onJoined?.();
    else sub.onRefused?.(answer?.error ?? "refused");
  });
}

export function startLive(): void {
  if (socket) return;
  socket = io({ transports: ["websocket"], reconnectionDelayMax: 3000 });
  socket.on("connect", () => {
    connected.value = true;
    for (const sub of subscriptions) join(sub);
  });
  socket.on("disconnect", () => {
    connected.value = false;
  });
  socket.on("job", (job: Job) => {
    for (const sub of subscriptions) {
      const room = sub.room;
      if ("project" in room ? job.project_id === room.project : job.id === room.job) sub.onJob(job);
    }
  });
}

export function stopLive(): void {
  socket?.disconnect();
  socket = null;
  connected.value = false;
  joined.clear();
}

/** Subscribe to a room's job events; returns the unsubscribe. `onJoined` runs after every (re)join. */
export function subscribe(sub: Subscription): () => void {
  subscriptions.add(sub);
  const k = key(sub.room);
  joined.set(k, (joined.get(k) ?? 0) + 1);
  if (socket?.connected) join(sub);
  return () => {
    subscriptions.delete(sub);
    const left = (joined.get(k) ?? 1) - 1;
    if (left <= 0) {
      joined.delete(k);
      socket?.emit("leave", sub.room);
    } else joined.set(k, left);
  };
}

/**
 * Collects job events into a map and hands them on at most every `interval` ms, on an animation frame:
 * hundreds of events a second cost one redraw per flush.
 */
export class JobBatcher {
  private pending = new Map<string, Job>();
  private timer: number | null = null;
  private last = 0;
  private stopped = false;

  constructor(private readonly flush: (jobs: Map<string, Job>) => void, private readonly interval = 250) {}

  push = (job: Job): void => {
    const seen = this.pending.get(job.id);
    if (!seen || (seen.updated_at ?? "") <= (job.updated_at ?? "")) this.pending.set(job.id, job);
    if (this.timer !== null) return;
    const wait = Math.max(0, this.last + this.interval - performance.now());
    this.timer = window.setTimeout(() => {
      requestAnimationFrame(() => {
        this.timer = null;
        if (this.stopped) return;
        this.last = performance.now();
        const batch = this.pending;
        this.pending = new Map();
        if (batch.size) this.flush(batch);
      });
    }, wait);
  };

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }
}

/** Emit `event` and wait for its acknowledgement; rejects when not connected or after `timeoutMs`
 * (the caller falls back to REST then). */
export function emitWithAck<T>(event: string, data: unknown, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    if (!socket?.connected) {
      reject(new Error("not connected"));
      return;
    }
    socket.timeout(timeoutMs).emit(event, data, (err: Error | null, answer: T) => {
      if (err) reject(err);
      else resolve(answer);
    });
  });
}

/** Subscribe to one job's events without a batcher (a page that follows one job). */
export function followJob(id: string, onJob: (job: Job) => void, onJoined?: () => void): () => void {
  return subscribe({ room: { job: id }, onJob, onJoined });
}
