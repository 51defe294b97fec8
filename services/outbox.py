"""The catalog is the outbox: a job is accepted when its row is committed, and its message is sent after.

`send_after_commit` sends the messages of jobs committed by the caller's transaction. A send that fails (the
broker is down) only logs and clears the job's `sent_at`; the job stays `queued`. `dispatch` — run by the
reaper's loop — sends again every queued job whose send failed, and every queued job whose message has
been out of sight (in no queue and no unacked set) for longer than `dispatch_grace`, as after a broker
restart that kept nothing. Sending twice is harmless: a job runs only while it holds its heartbeat key and
is still live (`workers.context`). An interactive job whose message would have expired meanwhile ends
`failed` instead of being sent again; a batch job (`JobKind.batch`: pre-annotation) is sent again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery
from sqlalchemy import or_, select, update

from store.db import after_commit
from store.schema import Job, JobStatus
from store.schema.base import utcnow
from services.jobs import job_payload
from services.queues import QUEUES, Queue
from services.registry import get_kind, message_options
from services.runtime import Runtime

log = logging.getLogger(__name__)

# A send gives up quickly when the broker is away: the dispatcher retries for as long as it takes.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def send_after_commit(celery: Celery, runtime: Runtime, session, jobs: list[Job]) -> None:
    after_commit(session, lambda: send(celery, runtime, jobs))


def send(celery: Celery, runtime: Runtime, jobs: list[Job]) -> list[str]:
    """Announce each committed job, then send its message; return the ids that could not be sent (their
    `sent_at` is cleared, so the dispatcher picks them up at its next pass)."""
    sent = 0
    try:
        with celery.producer_or_acquire() as producer:
            for job in jobs:
                runtime.events.job(job_payload(job))  # before the send: `queued` always precedes `running`
                _publish(celery, job, producer)
                sent += 1
    except Exception as exc:  # noqa: BLE001 - any broker failure leaves the rest to the dispatcher
        log.warning("broker unavailable (%s: %s); %d job(s) wait in the outbox", type(exc).__name__, exc,
                    len(jobs) - sent)
    unsent = [j.id for j in jobs[sent:]]
    if unsent:
        try:
            with runtime.engine.begin() as conn:
                conn.execute(update(Job).where(Job.id.in_(unsent), Job.status == JobStatus.queued)
                             .values(sent_at=None))
        except Exception:  # noqa: BLE001 - the dispatcher finds them anyway once the grace has passed
            log.warning("could not mark %d unsent job(s); the dispatcher finds them after its grace", len(unsent))
    return unsent


def _publish(celery: Celery, job: Job, producer) -> None:
    queue, kind = Queue(job.queue), get_kind(job.kind)
    celery.send_task(
        kind.task_name(queue),
        args=[job.id], task_id=job.id, queue=queue.value, routing_key=queue.value, producer=producer,
        retry_policy=PUBLISH_RETRY, **message_options(queue, kind),
    )


def dispatch(celery: Celery, runtime: Runtime) -> dict[str, list[str]]:
    """One pass: send queued jobs whose message failed to go or went missing; end those that expired."""
    from services.lifecycle import end_job
    from services.reaper import messages_held

    now = utcnow()
    grace = now - timedelta(seconds=runtime.settings.dispatch_grace)
    report: dict[str, list[str]] = {"sent": [], "expired": []}
    with runtime.sessions() as session:
        candidates = session.scalars(
            select(Job).where(Job.status == JobStatus.queued, or_(Job.sent_at.is_(None), Job.sent_at < grace))
            .order_by(Job.created_at)
        ).all()
        if not candidates:
            return report
        held = messages_held(runtime, {j.queue for j in candidates if j.sent_at is not None})
        resend: list[Job] = []
        for job in candidates:
            if job.sent_at is not None and job.id in held:
                continue  # waiting its turn, or in flight
            expires = QUEUES[Queue(job.queue)].expires
            if expires and not get_kind(job.kind).batch and job.created_at < now - timedelta(seconds=expires):
                why = "expired before a worker took it (its message could not be delivered in time)"
                if end_job(runtime, session, job.id, JobStatus.failed, message=why, error=why):
                    report["expired"].append(job.id)
                continue
            claimed = session.execute(
                update(Job).where(Job.id == job.id, Job.status == JobStatus.queued, Job.sends == job.sends)
                .values(sent_at=now, sends=Job.sends + 1)
            ).rowcount
            if claimed:
                resend.append(job)
        session.commit()
        for job in resend:
            session.refresh(job)
    if resend:
        unsent = set(send(celery, runtime, resend))
        report["sent"] = [j.id for j in resend if j.id not in unsent]
    if report["sent"] or report["expired"]:
        log.warning("dispatcher: sent again %d job(s), expired %d", len(report["sent"]), len(report["expired"]))
    return report
