"""Submitting and cancelling jobs, and the one JSON shape of a job (REST responses and events alike).

The Job row is committed before its message is sent (a worker never sees an id the catalog lacks), and
the row is the outbox: a job is accepted once committed, whatever the broker's state (`services.outbox`).
Ids are passed, never objects.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import logging

from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.db import after_commit
from store.schema import Job, JobStatus
from store.schema.base import utcnow
from services.queues import Queue
from services.registry import get_kind
from services.runtime import Runtime

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a task at its next step after the job was cancelled (by the job context)."""


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
        sent_at=utcnow(),  # the send is attempted right after the commit; a failed one clears this
        sends=1,
        project_id=project_id,
        user_id=user_id,
    )
    session.add(job)
    return job


def submit(celery: Celery, runtime: Runtime, session: Session, kind: str, **fields) -> Job:
    """Create a queued job, commit, then send its message (see `submit_many`)."""
    return submit_many(celery, runtime, session, [{"kind": kind, **fields}])[0]


def submit_many(celery: Celery, runtime: Runtime, session: Session, specs: list[dict]) -> list[Job]:
    """Several jobs in one transaction. They are accepted once the commit is done: their messages are
    sent after it (one producer connection), and a message that cannot be sent now is sent by the
    dispatcher later (`services.outbox`), so a broker outage never loses or fails an accepted job."""
    from services.outbox import send_after_commit

    jobs = [create_job(session, spec["kind"], **{k: v for k, v in spec.items() if k != "kind"}) for spec in specs]
    send_after_commit(celery, runtime, session, jobs)
    session.commit()
    return jobs


def cancel(celery: Celery, runtime: Runtime, session: Session, job_id: str) -> Job:
    """A queued job is cancelled at once (its resource settled in the same transaction); a running one is
    asked to stop and stops at its next step. Each is one conditional UPDATE, so a cancel racing the job's
    own end never overwrites it."""
    from services.lifecycle import end_job

    ended = end_job(runtime, session, job_id, JobStatus.cancelled, message="cancelled before it started",
                    from_states=(JobStatus.queued,), cancel_requested=True)
    if ended is None:
        asked = session.execute(
            update(Job).where(Job.id == job_id, Job.status == JobStatus.running)
            .values(cancel_requested=True, message="cancel requested", updated_at=utcnow())
        ).rowcount
        if not asked:
            status = session.scalar(select(Job.status).where(Job.id == job_id))
            raise JobStateError(f"job {job_id} is already {status.value if status else 'gone'}")
        after_commit(session, lambda: _announce_cancel(celery, runtime, job_id))
    else:
        after_commit(session, lambda: _revoke(celery, job_id))
    session.commit()
    return session.get(Job, job_id, populate_existing=True)


def _announce_cancel(celery: Celery, runtime: Runtime, job_id: str) -> None:
    """Tell the running task at once (the row's flag reaches it at its next progress write anyway)."""
    try:
        runtime.redis.set(runtime.keys.job_cancel(job_id), "1", ex=7 * 24 * 3600)
    except Exception:  # noqa: BLE001 - the catalog's cancel_requested is the truth
        log.warning("could not set the cancel flag of job %s; it stops at its next progress write", job_id)
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        if job is not None:
            runtime.events.job(job_payload(job))


def _revoke(celery: Celery, job_id: str) -> None:
    """Workers drop a cancelled job's waiting message (a copy that still runs finds the job ended)."""
    try:
        celery.control.revoke(job_id)
    except Exception:  # noqa: BLE001 - best effort
        log.warning("could not broadcast the revoke of job %s", job_id)
