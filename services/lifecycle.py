"""One job lifecycle: every terminal transition goes through `end_job`.

Whoever ends a job — its task finishing or failing, a cancel while queued, the reaper giving up on a job
whose worker keeps dying, the dispatcher finding an interactive message expired — calls `end_job`. It moves
the job with one conditional UPDATE (`queued`/`running` → terminal: a terminal state is never overwritten)
and, in the same transaction, calls the kind's settle hook (`services.settle`), which puts the job's resource
into the state that outcome implies. The caller commits; the job's event goes out after the commit.
"""

from __future__ import annotations

from sqlalchemy import update

from store.db import after_commit
from store.schema import Job, JobStatus
from store.schema.base import utcnow
from services.jobs import job_payload
from services.runtime import Runtime
from services.settle import settle

LIVE = (JobStatus.queued, JobStatus.running)


def end_job(runtime: Runtime, session, job_id: str, status: JobStatus, *, message: str,
            from_states=LIVE, **values) -> Job | None:
    """Move a live job to the terminal `status` and settle its resource, in the caller's transaction.
    Returns the job if this call ended it, None if it had already ended (or is in none of `from_states`)."""
    assert status.terminal, status
    now = utcnow()
    moved = session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_(from_states))
        .values(status=status, message=message, finished_at=now, updated_at=now, **values)
    ).rowcount
    if not moved:
        return None
    job = session.get(Job, job_id, populate_existing=True)
    settle(runtime, session, job)
    payload = job_payload(job)
    after_commit(session, lambda: runtime.events.job(payload))
    return job
