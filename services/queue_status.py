"""The queues as a person watching them needs them: what waits, what runs where, how fast jobs finish.

Waiting and in-flight messages come from Redis; the workers from the entries each keeps fresh in Redis
(`workers.monitor`); what they run and how many jobs finished lately from the catalog.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from redis.exceptions import RedisError
from sqlalchemy import case, func, select

from services.queues import QUEUES, Queue, unacked_key
from services.runtime import Runtime
from store.schema import Job, JobStatus
from store.schema.base import utcnow

log = logging.getLogger(__name__)

PRESENCE_TTL = 15.0  # workers.monitor refreshes its entry thrice as often: an older one is a worker gone


def workers(rt: Runtime) -> list[dict]:
    """The live workers' own entries; stale ones are dropped (a worker killed without saying goodbye)."""
    try:
        entries = rt.redis.hgetall(rt.keys.worker_presence)
    except RedisError:
        return []
    now, found, stale = time.time(), [], []
    for name, raw in entries.items():
        entry = json.loads(raw)
        (found if now - entry.get("seen_at", 0) < PRESENCE_TTL else stale).append(entry)
    if stale:
        try:
            rt.redis.hdel(rt.keys.worker_presence, *(e["name"] for e in stale))
        except RedisError:
            pass
    return sorted(found, key=lambda e: e["name"])


def overview(rt: Runtime, session, may_see) -> list[dict]:
    """One entry per queue of the queue table; `may_see(job)` says whether the caller may see a job (the
    others are shown by kind only)."""
    found = workers(rt)
    running: dict[str, list[Job]] = {}
    for job in session.scalars(select(Job).where(Job.status == JobStatus.running, Job.worker.is_not(None))):
        running.setdefault(job.worker, []).append(job)
    finished = _finished_per_queue(session)
    out = []
    for queue, settings in QUEUES.items():
        serving = [_worker_view(w, running.get(w["name"], []), may_see) for w in found
                   if queue.value in w.get("queues", [])]
        active = sum(len(w["active"]) for w in serving)
        waiting, unacked = _broker_counts(rt, queue)
        out.append({
            "name": queue.value, "waiting": waiting, "in_flight": max(unacked, active), "workers": serving,
            "finished_last_minute": finished.get(queue.value, (0, 0))[0],
            "finished_last_hour": finished.get(queue.value, (0, 0))[1],
            **{k: getattr(settings, k) for k in ("description", "acks_late", "time_limit", "expires",
                                                 "visibility_timeout", "pool", "concurrency")},
        })
    return out


def _worker_view(worker: dict, jobs: list[Job], may_see) -> dict:
    active = [{"job_id": job.id if may_see(job) else None, "kind": job.kind} for job in jobs]
    return {"name": worker["name"], "pool": worker.get("pool"), "concurrency": worker.get("concurrency"),
            "active": active, "versions": worker.get("versions", {})}


def _broker_counts(rt: Runtime, queue: Queue) -> tuple[int, int]:
    try:
        pipe = rt.redis.pipeline(transaction=False)
        pipe.llen(queue.value)
        pipe.hlen(unacked_key(queue))
        waiting, unacked = pipe.execute()
        return int(waiting), int(unacked)
    except RedisError:
        return 0, 0


def _finished_per_queue(session) -> dict[str, tuple[int, int]]:
    now = utcnow()
    minute, hour = now - timedelta(minutes=1), now - timedelta(hours=1)
    rows = session.execute(
        select(Job.queue, func.sum(case((Job.finished_at > minute, 1), else_=0)), func.count())
        .where(Job.finished_at > hour).group_by(Job.queue)
    ).all()
    return {q: (int(m or 0), int(h)) for q, m, h in rows}
