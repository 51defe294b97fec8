"""A job kind for tests that runs until the test releases it (or cancels it), so crashes and cancels
can be staged at a known moment. Workers started by the tests import this module (`-I`)."""

from __future__ import annotations

import time

from workers.context import JobContext, job_task
from workers.registry import KINDS, JobKind

KINDS.setdefault("test.wait", JobKind("test.wait", "runs until its release key exists in Redis"))


@job_task("test.wait")
def wait(ctx: JobContext, release_key: str) -> dict:
    steps = 0
    while not ctx.rt.redis.exists(release_key):
        steps += 1
        ctx.progress(min(steps, 99), 100, "waiting for release", steps=steps)
        time.sleep(0.02)
    return {"steps": steps, "attempt": ctx.attempts}
