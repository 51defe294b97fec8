"""A job kind for tests that runs until the test releases it (or cancels it), so crashes and cancels
can be staged at a known moment. Workers started by the tests import this module (`-I`)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from workers.context import JobContext, job_task
from services.registry import KINDS, JobKind

KINDS.setdefault("test.wait", JobKind("test.wait", "runs until its release key exists in Redis"))


@job_task("test.wait")
def wait(ctx: JobContext, release_key: str) -> dict:
    steps = 0
    while not ctx.rt.redis.exists(release_key):
        steps += 1
        ctx.progress(min(steps, 99), 100, "waiting for release", steps=steps)
        time.sleep(0.02)
    return {"steps": steps, "attempt": ctx.attempts}


KINDS.setdefault("test.count", JobKind("test.count", "sleeps, and leaves a file per start and per finish"))


@job_task("test.count")
def count(ctx: JobContext, runs_dir: str, seconds: float = 0.2) -> dict:
    """Counts its own executions in files (not in Redis, which a fault test restarts empty)."""
    runs = Path(runs_dir)
    (runs / f"start.{ctx.id}.{uuid.uuid4().hex}").touch()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.progress(1 - (deadline - time.monotonic()) / seconds)
        time.sleep(0.02)
    (runs / f"done.{ctx.id}.{uuid.uuid4().hex}").touch()
    return {"attempt": ctx.attempts}
