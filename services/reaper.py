"""The reaper: ends jobs whose worker died, unless the broker still holds their message.

A running job's worker refreshes a heartbeat key; when the key has expired the worker is gone. Then:
- the message is still with the broker (waiting in the queue, or in-flight under Redis ack emulation
  on an `acks_late` queue): the job goes back to `queued`, and an in-flight message is put back at the
  head of its queue at once (kombu's own restore), so the next free worker resumes the job now rather
  than when the queue's visibility timeout (a week for training) runs out;
- the message is gone (an early-ack queue, a broker that restarted empty): the job goes back to `queued`
  with no send recorded, and the dispatcher (`services.outbox`) sends it again.
A job whose workers keep dying fails after `max_attempts` runs. A job never stays `running` forever.
Right after Redis restarted (it keeps nothing here) heartbeats are missing for a moment although their
workers live; the reaper waits a heartbeat TTL of Redis uptime before it believes a missing one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update

from store.db import after_commit
from store.schema import Job, JobStatus
from store.schema.base import utcnow
from services.jobs import job_payload
from services.queues import Queue, unacked_key
from services.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class ReapReport:
    checked: int = 0
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _task_id(raw: str) -> str | None:
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # unacked entries are [message, exchange, routing_key]
            message = message[0]
        return message.get("headers", {}).get("id")
    except (ValueError, AttributeError, IndexError):
        return None


def messages_held(runtime: Runtime, queues: set[str]) -> dict[str, tuple[str, str] | None]:
    """Every message the broker still holds for these queues: task id → (unacked key, delivery tag) when
    in flight, None when waiting in the queue."""
    r = runtime.redis
    held: dict[str, tuple[str, str] | None] = {}
    keys = {unacked_key(None)} | {unacked_key(Queue(q)) for q in queues if q in Queue._value2member_map_}
    for key in keys:
        for tag, raw in r.hscan_iter(key):
            if tid := _task_id(raw):
                held[tid] = (key, tag)
    for queue in queues:
        for raw in r.lrange(queue, 0, -1):
            if tid := _task_id(raw):
                held[tid] = None
    return held


def redeliver_now(runtime: Runtime, key: str, tag: str) -> None:
    """Move an in-flight message of a dead worker from the unacked hash `key` back to its queue."""
    from kombu import Connection

    # the names workers.celery_app gives a single-queue pool; the shared key keeps kombu's defaults
    options = {} if key == unacked_key(None) else {
        "unacked_key": key, "unacked_index_key": f"{key}:index", "unacked_mutex_key": f"{key}:mutex"}
    with Connection(runtime.settings.redis_url, transport_options=options) as conn:
        conn.default_channel.qos.restore_by_tag(tag, leftmost=True)


def reap(runtime: Runtime) -> ReapReport:
    """One pass. Safe to run from several places at once (a Redis lock makes them take turns)."""
    report = ReapReport()
    if _redis_uptime(runtime) < runtime.settings.heartbeat_ttl:
        # Redis restarted empty: live workers have not rewritten their heartbeats yet, so a missing one
        # says nothing about its worker. Look again once every live worker has had a whole TTL to beat.
        return report
    lock = runtime.redis.lock(runtime.keys.reaper_lock, timeout=60, blocking_timeout=5)
    if not lock.acquire():
        return report
    try:
        grace = utcnow() - timedelta(seconds=runtime.settings.heartbeat_ttl)
        with runtime.sessions() as session:
            running = session.scalars(select(Job).where(Job.status == JobStatus.running)).all()
            report.checked = len(running)
            dead = [
                j for j in running
                if j.updated_at < grace and not runtime.redis.exists(runtime.keys.job_heartbeat(j.id))
            ]
            if not dead:
                return report
            held = messages_held(runtime, {j.queue for j in dead})
            for job in dead:
                _reap_one(runtime, session, job, held, report)
            session.commit()
        if report.requeued or report.failed:
            log.warning("reaper: requeued %s, failed %s", report.requeued, report.failed)
        return report
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - an expired lock needs no release
            pass


def _reap_one(runtime: Runtime, session, job: Job, held: dict, report: ReapReport) -> None:
    """A running job whose worker is gone goes back to `queued`: its message is put back at the head of its
    queue when the broker still holds it in flight, left where it is when it waits in the queue, and sent
    again by the dispatcher when it is gone (an early-ack queue, a broker that restarted empty). A job whose
    workers died `max_attempts` times fails: it is what kills them."""
    from services.lifecycle import end_job

    if job.attempts >= runtime.settings.max_attempts:
        why = (f"its worker died {job.attempts} times while running it (last: {job.worker}); "
               "not tried again — fix what kills it and submit it again")
        if end_job(runtime, session, job.id, JobStatus.failed, message="worker lost", error=why,
                   from_states=(JobStatus.running,)):
            report.failed.append(job.id)
        return
    values = {"message": f"worker {job.worker} lost; running it again"}
    if job.id not in held:
        values["sent_at"] = None  # for the dispatcher
    elif held[job.id] is not None:
        redeliver_now(runtime, *held[job.id])
    moved = session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.running)
        .values(status=JobStatus.queued, updated_at=utcnow(), **values)
    ).rowcount
    if moved:
        report.requeued.append(job.id)
        payload = job_payload(session.get(Job, job.id, populate_existing=True))
        after_commit(session, lambda: runtime.events.job(payload))


def _redis_uptime(runtime: Runtime) -> float:
    return float(runtime.redis.info("server").get("uptime_in_seconds", 0))
