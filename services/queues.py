"""The one table of queues. Routes, worker flags, docker/ops files and tests all read it from here."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Queue(str, enum.Enum):
    inference = "inference"
    augmentation = "augmentation"
    training = "training"
    deployment = "deployment"


@dataclass(frozen=True)
class QueueSettings:
    description: str
    acks_late: bool            # ack after the task ran: a killed worker's message comes back
    time_limit: int | None     # hard limit, seconds (the process is killed)
    soft_time_limit: int | None  # the task gets SoftTimeLimitExceeded first
    expires: int | None        # a message older than this is discarded, not run (interactive work)
    visibility_timeout: int    # Redis: an unacked message is redelivered after this many seconds
    pool: str                  # worker pool implementation
    concurrency: int | None    # None: one process (prefork) or thread (threads) per CPU
    redeliver: bool = True     # the broker keeps each in-flight message until acked (kombu's ack emulation)

    @property
    def reject_on_worker_lost(self) -> bool:
        return self.acks_late


QUEUES: dict[Queue, QueueSettings] = {
    Queue.inference: QueueSettings(
        description="box suggestions and pipeline stages (CPU, warm ONNX sessions per process)",
        acks_late=False, time_limit=None, soft_time_limit=None, expires=60,
        visibility_timeout=300, pool="threads", concurrency=None, redeliver=False,
    ),
    Queue.augmentation: QueueSettings(
        description="image ingest and dataset builds (CPU, idempotent)",
        acks_late=True, time_limit=6 * 3600, soft_time_limit=6 * 3600 - 60, expires=None,
        visibility_timeout=7 * 3600, pool="prefork", concurrency=None,
    ),
    Queue.training: QueueSettings(
        description="training runs (GPU where present), one at a time per worker, resumable",
        acks_late=True, time_limit=None, soft_time_limit=None, expires=None,
        visibility_timeout=7 * 24 * 3600, pool="solo", concurrency=1,
    ),
    Queue.deployment: QueueSettings(
        description="ONNX export and verification",
        acks_late=True, time_limit=3600, soft_time_limit=3540, expires=None,
        visibility_timeout=2 * 3600, pool="solo", concurrency=1,
    ),
}


def unacked_key(queue: Queue | None) -> str:
    """Each single-queue pool keeps its in-flight messages under its own Redis key and timeout,
    so a short timeout on one queue never redelivers a long-running task of another."""
    return "unacked" if queue is None else f"unacked:{queue.value}"


def worker_argv(
    queue: Queue, *, concurrency: int | None = None, loglevel: str = "INFO", name: str | None = None
) -> list[str]:
    """`celery worker` arguments for a pool serving `queue`, as the table prescribes.
    The node is called `<queue>@<host>` unless `name` says otherwise."""
    s = QUEUES[queue]
    argv = [
        "-A", "workers", "worker", "-Q", queue.value, "-n", f"{name or queue.value}@%h",
        "--pool", s.pool, "--prefetch-multiplier", "1", "--loglevel", loglevel,
        "--without-mingle", "--without-gossip",
    ]
    if s.acks_late:
        argv.append("--disable-prefetch")  # take a message only when a process is free
    n = concurrency or s.concurrency
    if n:
        argv += ["--concurrency", str(n)]
    return argv
