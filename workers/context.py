"""The job context every task runs in: status transitions, throttled progress, events, heartbeat, cancel.

A task is written as `fn(ctx, **params) -> dict` and registered with `@job_task("kind")`. The context
moves the Job row `queued → running → succeeded | failed | cancelled` with conditional UPDATEs (one
statement each, safe with SQLite and PostgreSQL alike), so a redelivered message finds its job and
either resumes it or sees it is already finished.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import uuid
import time

from celery import current_app, shared_task, signals
from celery.exceptions import SoftTimeLimitExceeded
from redis.exceptions import RedisError
from sqlalchemy import select, update

from store.schema import Job, JobStatus
from store.schema.base import utcnow
from services.jobs import JobCancelled, JobSchema, job_payload
from services.lifecycle import end_job
from services.queues import Queue
from services.registry import get_kind, task_options
from services.runtime import Runtime

log = logging.getLogger(__name__)
_STAMP = JobSchema(only=("updated_at",))  # a throttled progress event updates the job's dumped payload

_RUNTIMES: dict[int, Runtime] = {}


class Begin(enum.Enum):
    run = "run"
    skip = "skip"    # finished, cancelled or unknown: nothing to do
    defer = "defer"  # another live worker is running it: look again later


def runtime_for(app) -> Runtime:
    """The process's Runtime for a Celery app (one per app, rebuilt per process after fork)."""
    rt = _RUNTIMES.get(id(app))
    if rt is None:
        rt = _RUNTIMES[id(app)] = Runtime(app.loopline_settings)
    return rt


@signals.worker_process_init.connect
def _after_fork(**_):
    for rt in _RUNTIMES.values():
        rt.after_fork()


class JobContext:
    def __init__(
        self, runtime: Runtime, job_id: str, *, queue: str = "", worker: str = "", unacked_key: str | None = None
    ):
        self.rt = runtime
        self.id = job_id
        self.queue = queue
        self.worker = worker
        self.unacked_key = unacked_key
        self.params: dict = {}
        self.project_id: int | None = None
        self.attempts = 0
        self._payload: dict = {}
        self._last_write = self._last_emit = self._last_cancel_check = 0.0
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._token = f"{worker}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # who holds the heartbeat

    # --- lifecycle -------------------------------------------------------------------------------
    def begin(self) -> Begin:
        """Claim the job: it runs only while this context holds its heartbeat key (SET NX), so two
        deliveries of one job (a redelivery, a send the dispatcher repeated) never run at once, and only
        while the job is live in the catalog, so a finished job never runs again."""
        now = utcnow()
        s = self.rt.settings
        hb_key = self.rt.keys.job_heartbeat(self.id)
        with self.rt.sessions() as session:
            job = session.get(Job, self.id)
            if job is None:
                log.error("job %s is not in the catalog; dropping its message", self.id)
                return Begin.skip
            if job.status.terminal:
                return Begin.skip
            if job.cancel_requested:
                end_job(self.rt, session, self.id, JobStatus.cancelled, message="cancelled before it started")
                session.commit()
                return Begin.skip
            if not self.rt.redis.set(hb_key, self._token, nx=True, ex=int(s.heartbeat_ttl)):
                return Begin.defer  # another delivery runs it now: look again when its heartbeat could be gone
            claimed = session.execute(
                update(Job)
                .where(Job.id == self.id, Job.status.in_([JobStatus.queued, JobStatus.running]))
                .values(
                    status=JobStatus.running, attempts=Job.attempts + 1, started_at=job.started_at or now,
                    worker=self.worker, broker_unacked_key=self.unacked_key, updated_at=now,
                    message="running" if job.attempts == 0 else f"running again (attempt {job.attempts + 1})",
                )
            ).rowcount
            session.commit()
            if not claimed:
                self.rt.redis.delete(hb_key)
                return Begin.skip
            job = session.get(Job, self.id, populate_existing=True)
            self.params, self.project_id, self.attempts = dict(job.params or {}), job.project_id, job.attempts
            self._payload = job_payload(job)
        self.rt.events.job(self._payload)
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat-{self.id}", daemon=True)
        self._heartbeat.start()
        return Begin.run

    def finish(self, status: JobStatus, *, result: dict | None = None, error: str | None = None) -> None:
        """End the job through the one lifecycle (its resource settled in the same transaction)."""
        self._stop.set()
        values = {"result": result, "error": error, "details": self._payload.get("details", {})}
        if status is JobStatus.succeeded:
            values["progress"] = 1.0
        message = {"succeeded": "done", "cancelled": "cancelled", "failed": "failed"}[status.value]
        with self.rt.sessions() as session:
            end_job(self.rt, session, self.id, status, message=message, **values)
            session.commit()
        try:
            self.rt.redis.delete(self.rt.keys.job_heartbeat(self.id))
        except Exception:  # noqa: BLE001 - the key expires by itself
            log.warning("could not drop the heartbeat of job %s", self.id)

    # --- reporting -------------------------------------------------------------------------------
    @property
    def details(self) -> dict:
        """The job's details as last reported — on a redelivered job, what an earlier attempt wrote (a forced
        `progress` is written at once, so a task may keep there what its next attempt needs)."""
        return dict(self._payload.get("details") or {})

    def progress(self, done: float, total: float | None = None, message: str | None = None, *, force: bool = False,
                 **details) -> None:
        """Report `done` of `total` (or a fraction when total is None). Cheap to call often:
        events and catalog writes are throttled (`force` sends and writes this one at once, for
        milestones); a cancel raises JobCancelled here."""
        fraction = (done / total) if total else float(done)
        self._payload["progress"] = round(min(1.0, max(0.0, fraction)), 4)
        if message is not None:
            self._payload["message"] = message
        if details:
            self._payload["details"] = {**self._payload.get("details", {}), **details}
        now = time.monotonic()
        s = self.rt.settings
        self.poll_cancel(now)
        if force or now - self._last_emit >= s.progress_emit_interval:
            self._last_emit = now
            self._payload.update(_STAMP.dump({"updated_at": utcnow()}))  # the schema's timestamp format
            self.rt.events.job(self._payload)
        if force or now - self._last_write >= s.progress_write_interval:
            self._last_write = now
            self._write_progress()

    def poll_cancel(self, now: float | None = None) -> None:
        """Raise JobCancelled if the job was cancelled; asks Redis at most every 0.2 s, so a loop may
        call it after every step."""
        now = time.monotonic() if now is None else now
        if now - self._last_cancel_check >= 0.2:
            self._last_cancel_check = now
            self.check_cancelled()

    def _write_progress(self) -> None:
        p = self._payload
        with self.rt.sessions() as session:
            session.execute(
                update(Job)
                .where(Job.id == self.id, Job.status == JobStatus.running)
                .values(progress=p["progress"], message=p["message"], details=p.get("details", {}), updated_at=utcnow())
            )
            cancel = session.scalar(select(Job.cancel_requested).where(Job.id == self.id))
            session.commit()
        if cancel:
            raise JobCancelled(self.id)

    def cancelled(self) -> bool:
        """The Redis flag, for a cancel within 0.2 s. While Redis is away the job goes on: the row's
        cancel_requested still reaches it at the next progress write."""
        try:
            return bool(self.rt.redis.exists(self.rt.keys.job_cancel(self.id)))
        except RedisError:
            return False

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled(self.id)

    # --- heartbeat -------------------------------------------------------------------------------
    def heartbeat_left(self) -> int:
        return max(1, int(self.rt.redis.ttl(self.rt.keys.job_heartbeat(self.id)) or 1))

    def _beat(self) -> None:
        s = self.rt.settings
        key = self.rt.keys.job_heartbeat(self.id)
        while not self._stop.wait(s.heartbeat_interval):
            try:
                self.rt.redis.set(key, self._token, ex=int(s.heartbeat_ttl))
            except Exception:  # noqa: BLE001 - a missed beat is retried; the TTL covers a few
                log.warning("heartbeat of job %s failed", self.id, exc_info=True)

    def close(self) -> None:
        self._stop.set()


def job_task(kind_name: str):
    """Register `fn(ctx, **params) -> dict` as the Celery task(s) of a job kind, one per queue it runs on,
    each with the options its queue prescribes."""
    kind = get_kind(kind_name)

    def decorator(fn):
        for queue in kind.queues():
            _register(fn, kind.task_name(queue), queue)
        return fn

    return decorator


def _register(fn, name: str, queue: Queue) -> None:
    def run(task, job_id: str):
        runtime = runtime_for(task.app)
        unacked = (task.app.conf.broker_transport_options or {}).get("unacked_key")
        ctx = JobContext(
            runtime, job_id, queue=queue.value, worker=task.request.hostname or "", unacked_key=unacked
        )
        state = ctx.begin()
        if state is Begin.skip:
            return None
        if state is Begin.defer:
            raise task.retry(countdown=ctx.heartbeat_left() + 1, max_retries=None)
        try:
            result = fn(ctx, **ctx.params)
        except JobCancelled:
            ctx.finish(JobStatus.cancelled)
            return None
        except SoftTimeLimitExceeded:
            ctx.finish(JobStatus.failed, error=f"time limit of the {queue.value} queue exceeded")
            raise
        except Exception as exc:
            ctx.finish(JobStatus.failed, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            ctx.close()
        ctx.finish(JobStatus.succeeded, result=result or {})
        return None

    run.__name__ = run.__qualname__ = name.replace(".", "_")
    shared_task(name=name, bind=True, typing=False, **task_options(queue))(run)


@signals.task_revoked.connect
def _on_revoked(request=None, expired=False, **_):
    """A message dropped unrun (expired or revoked) still ends its job, with the reason."""
    job_id = getattr(request, "id", None)
    if not job_id:
        return
    runtime = runtime_for(current_app)
    status, why = (JobStatus.failed, "expired before a worker took it") if expired else (JobStatus.cancelled, "cancelled")
    with runtime.sessions() as session:
        end_job(runtime, session, job_id, status, message=why, from_states=(JobStatus.queued,),
                error=why if expired else None)
        session.commit()
