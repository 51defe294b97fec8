"""Submitting and cancelling jobs, and the one JSON shape of a job (REST responses and events alike).

The Job row is committed before its message is sent (a worker never sees an id the catalog lacks), and
the row is the outbox: a job is accepted once committed, whatever the broker's state (`services.outbox`).
Ids are passed, never objects.
"""

from __future__ import annotations

import uuid

import logging

from celery import Celery
from marshmallow import Schema, fields
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


class JobSchema(Schema):
    """The one JSON shape of a job: what `GET /api/jobs/<id>` answers (`api.schemas.JobOut` is this
    schema) and what every `job` event sends (`job_payload`). It dumps the Job row itself."""

    id = fields.String()
    kind = fields.String()
    queue = fields.String()
    status = fields.Enum(JobStatus, by_value=fields.String)
    progress = fields.Function(lambda job: round(job.progress or 0.0, 4), metadata={"type": "number"})
    message = fields.Function(lambda job: job.message or "", metadata={"type": "string"})
    details = fields.Function(lambda job: job.details or {}, metadata={"type": "object"})
    params = fields.Function(lambda job: job.params or {}, metadata={"type": "object"})
    result = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    cancel_requested = fields.Boolean()
    worker = fields.String(allow_none=True)
    project_id = fields.Integer(allow_none=True)
    user_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()


_JOB = JobSchema()


def job_payload(job: Job) -> dict:
    """The job as its REST answer and its events carry it."""
    return _JOB.dump(job)


def new_job_id() -> str:
    """A job's id (and its Celery task id)."""
    return str(uuid.uuid4())


def create_job(
    session: Session,
    kind: str,
    *,
    params: dict | None = None,
    queue: Queue | None = None,
    project_id: int | None = None,
    user_id: int | None = None,
    job_id: str | None = None,
) -> Job:
    """Add a queued Job row (not yet committed). The queue defaults to the kind's own; `job_id` when the
    caller had to name the job before the row exists (see `new_job_id`)."""
    job_kind = get_kind(kind)
    queue = queue or job_kind.queue
    if queue is None:
        raise ValueError(f"job kind {kind!r} needs a queue: one of {[q.value for q in Queue]}")
    job_kind.task_name(queue)  # validates the kind runs there
    job = Job(
        id=job_id or new_job_id(),
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
    """Add a queued job; its message goes once the caller commits (see `submit_many`)."""
    return submit_many(celery, runtime, session, [{"kind": kind, **fields}])[0]


def submit_many(celery: Celery, runtime: Runtime, session: Session, specs: list[dict]) -> list[Job]:
    """Several jobs in the caller's transaction. They are accepted once it commits: their messages are
    sent after that (one producer connection), and a message that cannot be sent then is sent by the
    dispatcher later (`services.outbox`), so a broker outage never loses or fails an accepted job."""
    from services.outbox import send_after_commit

    jobs = [create_job(session, spec["kind"], **{k: v for k, v in spec.items() if k != "kind"}) for spec in specs]
    send_after_commit(celery, runtime, session, jobs)
    session.flush()
    return jobs


def cancel(celery: Celery, runtime: Runtime, session: Session, job_id: str) -> Job:
    """A queued job is cancelled at once (its resource settled in the same transaction); a running one is
    asked to stop and stops at its next step. Each is one conditional UPDATE, so a cancel racing the job's
    own end never overwrites it. In the caller's transaction; the revoke or the cancel flag follow its commit."""
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
