"""Submitting and cancelling jobs, and the one JSON shape of a job (REST responses and events alike).

The Job row is committed before its message is sent (a worker never sees an id the catalog lacks);
ids are passed, never objects.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from celery import Celery
from sqlalchemy.orm import Session

from store.schema import Job, JobStatus
from store.schema.base import utcnow
from workers.queues import Queue
from workers.registry import get_kind, message_options
from workers.runtime import Runtime


class JobStateError(Exception):
    """The job is in a state that does not allow the request (e.g. cancelling a finished job)."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_payload(job: Job) -> dict:
    return {
        "id": job.id,
        "kind": job.kind,
        "queue": job.queue,
        "status": job.status.value,
        "progress": round(job.progress or 0.0, 4),
        "message": job.message or "",
        "details": job.details or {},
        "params": job.params or {},
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "worker": job.worker,
        "project_id": job.project_id,
        "user_id": job.user_id,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "updated_at": _iso(job.updated_at),
    }


def create_job(
    session: Session,
    kind: str,
    *,
    params: dict | None = None,
    queue: Queue | None = None,
    project_id: int | None = None,
    user_id: int | None = None,
) -> Job:
    """Add a queued Job row (not yet committed). The queue defaults to the kind's own."""
    job_kind = get_kind(kind)
    queue = queue or job_kind.queue
    if queue is None:
        raise ValueError(f"job kind {kind!r} needs a queue: one of {[q.value for q in Queue]}")
    job_kind.task_name(queue)  # validates the kind runs there
    job = Job(
        id=str(uuid.uuid4()),
        kind=kind,
        queue=queue.value,
        status=JobStatus.queued,
        progress=0.0,
        message="queued",
        details={},
        params=params or {},
        attempts=0,
        project_id=project_id,
        user_id=user_id,
    )
    session.add(job)
    return job


def enqueue(celery: Celery, runtime: Runtime, job: Job, producer=None) -> None:
    """Announce the committed job, then send its message. In that order: a fast worker's `running`
    event must never reach clients before this `queued` one."""
    queue = Queue(job.queue)
    runtime.events.job(job_payload(job))
    celery.send_task(
        get_kind(job.kind).task_name(queue),
        args=[job.id],
        task_id=job.id,
        queue=queue.value,
        routing_key=queue.value,
        producer=producer,
        **message_options(queue),
    )


def submit(celery: Celery, runtime: Runtime, session: Session, kind: str, **fields) -> Job:
    """Create, commit, then enqueue. If sending fails the job is marked failed, never left queued."""
    return submit_many(celery, runtime, session, [{"kind": kind, **fields}])[0]


def submit_many(celery: Celery, runtime: Runtime, session: Session, specs: list[dict]) -> list[Job]:
    """Several jobs in one transaction, sent over one producer connection. Jobs whose message could
    not be sent are marked failed with the reason, and the error is raised."""
    jobs = [create_job(session, spec["kind"], **{k: v for k, v in spec.items() if k != "kind"}) for spec in specs]
    session.commit()
    sent = 0
    try:
        with celery.producer_or_acquire() as producer:
            for job in jobs:
                enqueue(celery, runtime, job, producer)
                sent += 1
    except Exception as exc:
        mark_unsent(session, jobs[sent:], exc)
        raise
    return jobs


def mark_unsent(session: Session, jobs: list[Job], exc: Exception) -> None:
    """Jobs whose message could not be sent are failed with the reason, never left queued."""
    for job in jobs:
        job.status = JobStatus.failed
        job.error = f"could not enqueue: {type(exc).__name__}: {exc}"
        job.finished_at = utcnow()
    session.commit()


def cancel(celery: Celery, runtime: Runtime, session: Session, job: Job) -> Job:
    """A queued job is cancelled at once; a running one is asked to stop and stops at its next step."""
    if job.status.terminal:
        raise JobStateError(f"job {job.id} is already {job.status.value}")
    job.cancel_requested = True
    if job.status is JobStatus.queued:
        job.status = JobStatus.cancelled
        job.message = "cancelled before it started"
        job.finished_at = utcnow()
    else:
        job.message = "cancel requested"
    session.commit()
    runtime.redis.set(runtime.keys.job_cancel(job.id), "1", ex=7 * 24 * 3600)
    celery.control.revoke(job.id)  # workers drop the message if it is still waiting
    runtime.events.job(job_payload(job))
    return job
