"""Killed workers: the reaper ends jobs whose message is gone and requeues those the broker still holds;
a redelivered job then finishes. Runs against its own Redis database and catalog so that only the
workers started here consume the queues."""

from __future__ import annotations

import json
import signal
import time
import uuid

from store.schema import Job
from services import jobs as job_service
from services.queues import Queue
from services.outbox import dispatch
from services.reaper import reap
from services.runtime import Runtime


def _submit(runtime, celery, queue: str) -> tuple[str, str]:
    release = f"lltest:release:{uuid.uuid4().hex}"
    with runtime.sessions() as session:
        job = job_service.submit(celery, runtime, session, "test.wait", params={"release_key": release}, queue=Queue(queue))
        session.commit()
        return job.id, release


def _job(runtime, job_id) -> Job:
    with runtime.sessions() as session:
        return session.get(Job, job_id)


def _wait(runtime, job_id, statuses, timeout=30) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(runtime, job_id)
        if job.status.value in statuses:
            return job
        time.sleep(0.1)
    raise TimeoutError(f"{job_id} is {job.status.value}, wanted {statuses}")


def _reap_after_heartbeat_expires(iso, runtime):
    time.sleep(iso.heartbeat_ttl + 0.5)
    return reap(runtime)


def test_early_ack_job_of_a_killed_worker_is_sent_again_and_finishes(isolated):
    """The inference pool takes messages without keeping them: the reaper puts the job back in the outbox
    and the dispatcher sends it again to the next worker."""
    iso, runtime, celery, start = isolated
    worker = start("inference")
    job_id, release = _submit(runtime, celery, "inference")
    _wait(runtime, job_id, {"running"})
    assert reap(runtime).requeued == []  # alive: left alone
    worker.kill(signal.SIGKILL)
    report = _reap_after_heartbeat_expires(iso, runtime)
    assert report.requeued == [job_id] and report.failed == []
    job = _job(runtime, job_id)
    assert job.status.value == "queued" and job.sent_at is None and "lost" in job.message

    start("inference")
    assert dispatch(celery, runtime)["sent"] == [job_id]
    job = _wait(runtime, job_id, {"running"}, timeout=60)
    assert job.attempts == 2 and job.sends == 2
    runtime.redis.set(release, "1")
    job = _wait(runtime, job_id, {"succeeded", "failed"})
    assert job.status.value == "succeeded" and job.result["attempt"] == 2


def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(isolated):
    iso, runtime, celery, start = isolated
    reaper = Runtime(iso.model_copy(update={"max_attempts": 2}))
    job_id, _ = _submit(runtime, celery, "augmentation")
    for attempt in (1, 2):
        worker = start("augmentation")
        job = _wait(runtime, job_id, {"running"}, timeout=60)
        assert job.attempts == attempt
        worker.kill(signal.SIGKILL)
        report = _reap_after_heartbeat_expires(iso, reaper)
        assert (report.requeued, report.failed) == (([job_id], []) if attempt == 1 else ([], [job_id]))
    job = _job(runtime, job_id)
    assert job.status.value == "failed" and "died 2 times" in job.error and job.finished_at is not None
    reaper.close()


def test_acks_late_job_of_a_killed_worker_is_redelivered_and_finishes_once(isolated):
    iso, runtime, celery, start = isolated
    first = start("augmentation")
    job_id, release = _submit(runtime, celery, "augmentation")
    _wait(runtime, job_id, {"running"})
    first.kill(signal.SIGKILL)

    assert [json.loads(v)[0]["headers"]["id"] for v in runtime.redis.hvals("unacked:augmentation")] == [job_id]
    report = _reap_after_heartbeat_expires(iso, runtime)
    assert report.requeued == [job_id] and report.failed == []
    # the in-flight message is back in the queue at once, not after the queue's 7 h visibility timeout
    assert runtime.redis.hlen("unacked:augmentation") == 0
    assert [json.loads(m)["headers"]["id"] for m in runtime.redis.lrange("augmentation", 0, -1)] == [job_id]
    assert _job(runtime, job_id).status.value == "queued"

    # a new pool with the queue's normal settings takes it and runs the job again
    start("augmentation")
    job = _wait(runtime, job_id, {"running"}, timeout=60)
    assert job.attempts == 2
    runtime.redis.set(release, "1")
    job = _wait(runtime, job_id, {"succeeded", "failed"})
    assert job.status.value == "succeeded" and job.result["attempt"] == 2
    assert runtime.redis.hlen("unacked:augmentation") == 0
