"""The probe: a cheap, real job that proves a queue end to end.

It reports which worker took it (host, process, pool, objects frozen at start-up), the versions it runs,
the latency of a catalog and a Redis round trip from inside the worker, and, for a project, recounts the
project's statistics with SQL aggregates and stores them on the project.
"""

from __future__ import annotations

import gc
import os
import platform
import socket
import sys
import threading
import time

from billiard.process import current_process
from sqlalchemy import func, select, text

from store.schema import Annotation, Image, Job, LabelClass, LabelMap, Membership, Project
from store.schema.base import utcnow
from workers.context import JobContext, job_task
from workers.monitor import versions

def _pool() -> str:
    name = current_process().name
    if name.startswith("ForkPoolWorker"):
        return "prefork"
    if threading.current_thread().name.startswith("ThreadPoolExecutor"):
        return "threads"
    return "solo" if name == "MainProcess" else name


def _timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, round((time.perf_counter() - start) * 1000, 3)


def project_stats(session, project_id: int) -> dict:
    """Counts by SQL aggregates; nothing is loaded row by row."""
    image_ids = select(Image.id).where(Image.project_id == project_id)
    by_status = dict(
        session.execute(
            select(Annotation.status, func.count()).where(Annotation.image_id.in_(image_ids)).group_by(Annotation.status)
        ).all()
    )
    jobs = dict(session.execute(select(Job.status, func.count()).where(Job.project_id == project_id).group_by(Job.status)).all())
    return {
        "members": session.scalar(select(func.count()).select_from(Membership).where(Membership.project_id == project_id)),
        "classes": session.scalar(select(func.count()).select_from(LabelClass).where(LabelClass.project_id == project_id)),
        "label_maps": session.scalar(select(func.count()).select_from(LabelMap).where(LabelMap.project_id == project_id)),
        "images": session.scalar(select(func.count()).select_from(Image).where(Image.project_id == project_id)),
        "annotations": {status.value: n for status, n in by_status.items()},
        "jobs": {status.value: n for status, n in jobs.items()},
    }


@job_task("probe")
def probe(ctx: JobContext) -> dict:
    steps = 4 if ctx.project_id is not None else 3
    ctx.progress(0, steps, "inspecting the worker")
    result: dict = {
        "queue": ctx.queue,
        "worker": ctx.worker,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process": current_process().name,
        "pool": _pool(),
        "gc_frozen_objects": gc.get_freeze_count(),  # the start-up heap the collector skips (workers.heap)
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "executable": sys.executable,
        "versions": versions(),
    }
    ctx.progress(1, steps, "round trip to the catalog")
    with ctx.rt.sessions() as session:
        _, result["catalog_ms"] = _timed(lambda: session.execute(text("SELECT 1")).scalar())
        result["catalog"] = session.get_bind().dialect.name
    ctx.progress(2, steps, "round trip to Redis")
    _, result["redis_ms"] = _timed(ctx.rt.redis.ping)
    result["redis_version"] = ctx.rt.redis.info("server").get("redis_version")
    if ctx.project_id is not None:
        ctx.progress(3, steps, "recounting the project")
        with ctx.rt.sessions() as session:
            stats = project_stats(session, ctx.project_id)
            project = session.get(Project, ctx.project_id)
            if project is not None:
                project.stats, project.stats_updated_at = stats, utcnow()
            session.commit()
        result["project_stats"] = stats
    ctx.progress(steps, steps, "done")
    return result
