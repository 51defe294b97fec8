"""The job machinery against real Celery workers: the probe on every queue, listing, cancel."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.waiting import wait_until

from services import jobs as job_service
from services.queues import QUEUES as QUEUE_TABLE
from services.queues import Queue

QUEUES = ("inference", "augmentation", "training", "deployment")


@pytest.mark.parametrize("queue", QUEUES)
def test_probe_runs_on_each_queue(alice, project, workers, queue, sql):
    res = alice.post("/api/jobs", json={"kind": "probe", "queue": queue, "project_id": project["id"]})
    assert res.status_code == 202, res.get_json()
    queued = res.get_json()
    assert queued["status"] == "queued" and queued["queue"] == queue
    job = alice.wait_job(queued["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["queue"] == queue
    assert result["worker"] == workers[queue].hostname  # the pool of that queue took it
    assert result["pool"] == QUEUE_TABLE[Queue(queue)].pool
    assert result["gc_frozen_objects"] > 10_000  # the start-up heap is out of the collector's way (workers.heap)
    assert result["versions"]["celery"]
    assert result["catalog"] in ("sqlite", "postgresql") and result["redis_ms"] > 0
    assert result["project_stats"]["members"] == 3
    assert job["attempts"] == 1 and job["progress"] == 1.0 and job["started_at"] and job["finished_at"]
    stats = alice.get(f"/api/projects/{project['id']}").get_json()
    assert stats["stats"]["members"] == 3 and stats["stats_updated_at"]


def test_probe_without_project_is_visible_only_to_its_submitter(alice, bob, workers):
    job = alice.post("/api/jobs", json={"kind": "probe", "queue": "inference"}).get_json()
    assert alice.wait_job(job["id"])["status"] == "succeeded"
    assert "project_stats" not in alice.get(f"/api/jobs/{job['id']}").get_json()["result"]
    assert bob.get(f"/api/jobs/{job['id']}").status_code == 404
    assert job["id"] not in [j["id"] for j in bob.get("/api/jobs?limit=500").get_json()["items"]]


def test_job_list_filters(alice, bob, project, workers):
    pid = project["id"]
    ids = [alice.post("/api/jobs", json={"kind": "probe", "queue": q, "project_id": pid}).get_json()["id"] for q in QUEUES]
    for job_id in ids:
        alice.wait_job(job_id)
    listed = alice.get(f"/api/jobs?project_id={pid}&kind=probe&status=succeeded").get_json()
    assert {j["id"] for j in listed["items"]} == set(ids) and listed["total"] == 4
    assert alice.get(f"/api/jobs?project_id={pid}&status=failed").get_json()["total"] == 0
    # bob is a member: he sees the project's jobs
    assert bob.get(f"/api/jobs?project_id={pid}").get_json()["total"] == 4
    page = alice.get(f"/api/jobs?project_id={pid}&limit=3&offset=3").get_json()
    assert len(page["items"]) == 1 and page["total"] == 4


def _submit_wait(app, project_id, queue, user_id=None):
    """Enqueue the test job kind (it runs until released) through the real submit path."""
    from api.extensions import db

    release = f"lltest:release:{uuid.uuid4().hex}"
    with app.app_context():
        job = job_service.submit(app.extensions["celery"], app.extensions["loopline.runtime"], db.session, "test.wait",
                                 params={"release_key": release}, queue=_queue(queue), project_id=project_id,
                                 user_id=user_id)
        db.session.commit()
        return job.id, release


def _queue(name):
    from services.queues import Queue

    return Queue(name)


def _user_id(sql, name):
    return sql("SELECT id FROM users WHERE name = :n", n=name)[0][0]


def test_cancel_running_job_stops_it_cooperatively(app, alice, project, workers, sql, redis_client):
    job_id, _release = _submit_wait(app, project["id"], "augmentation", _user_id(sql, "alice"))
    alice.wait_job(job_id, statuses=("running",))
    wait_until(lambda: alice.get(f"/api/jobs/{job_id}").get_json()["details"].get("steps", 0) > 0, 10,
               "the job made a step")
    res = alice.post(f"/api/jobs/{job_id}/cancel")
    assert res.status_code == 202 and res.get_json()["cancel_requested"] is True
    started = time.monotonic()
    job = alice.wait_job(job_id, timeout=10)
    assert job["status"] == "cancelled", job
    assert time.monotonic() - started < 10
    assert job["details"]["steps"] > 0  # it did run, then stopped at a step
    assert alice.post(f"/api/jobs/{job_id}/cancel").status_code == 409  # already finished


def test_cancel_queued_job_never_runs(app, alice, project, workers, sql, redis_client):
    # occupy the single training process, then queue a probe behind it
    blocker, release = _submit_wait(app, project["id"], "training", _user_id(sql, "alice"))
    alice.wait_job(blocker, statuses=("running",))
    probe = alice.post("/api/jobs", json={"kind": "probe", "queue": "training", "project_id": project["id"]}).get_json()
    res = alice.post(f"/api/jobs/{probe['id']}/cancel")
    assert res.status_code == 202 and res.get_json()["status"] == "cancelled"
    later = alice.post("/api/jobs", json={"kind": "probe", "queue": "training", "project_id": project["id"]}).get_json()
    redis_client.set(release, "1")
    assert alice.wait_job(blocker)["status"] == "succeeded"
    # the one training process takes messages in order: once the later probe ran, the cancelled one's
    # message has reached the worker too, and must have been dropped unrun
    assert alice.wait_job(later["id"])["status"] == "succeeded"
    after = alice.get(f"/api/jobs/{probe['id']}").get_json()
    assert after["status"] == "cancelled" and after["attempts"] == 0 and after["started_at"] is None


def test_only_submitter_or_admin_cancels(app, alice, bob, project, workers, sql, redis_client):
    job_id, release = _submit_wait(app, project["id"], "inference", _user_id(sql, "alice"))
    try:
        res = bob.post(f"/api/jobs/{job_id}/cancel")  # bob is an annotator, not the submitter
        assert res.status_code == 403
    finally:
        redis_client.set(release, "1")
    assert alice.wait_job(job_id)["status"] == "succeeded"


def test_a_job_submitted_while_the_broker_is_down_is_accepted_and_waits_in_the_outbox(app, project, settings):
    """If the message cannot be sent the job stays queued with no send recorded, for the dispatcher."""
    from api.extensions import db
    from store.schema import Job
    from workers.celery_app import create_celery
    from services.runtime import Runtime

    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    celery = create_celery(broken, include_tasks=False)
    celery.conf.broker_connection_retry = False
    celery.conf.broker_connection_max_retries = 0
    celery.conf.broker_transport_options = {"max_retries": 0}
    runtime = Runtime(settings)
    with app.app_context():
        job = job_service.submit(celery, runtime, db.session, "probe", queue=_queue("inference"), project_id=project["id"])
        db.session.commit()
        db.session.expire_all()
        job = db.session.get(Job, job.id)
        assert job.status.value == "queued" and job.sent_at is None and job.error is None


def test_batch_submission_runs_every_job(alice, project, workers):
    jobs = [{"kind": "probe", "queue": q, "project_id": project["id"]} for q in QUEUES]
    res = alice.post("/api/jobs/batch", json={"jobs": jobs})
    assert res.status_code == 202, res.get_json()
    items = res.get_json()["items"]
    assert [j["queue"] for j in items] == list(QUEUES) and {j["status"] for j in items} == {"queued"}
    done = [alice.wait_job(j["id"]) for j in items]
    assert [(j["status"], j["result"]["queue"]) for j in done] == [("succeeded", q) for q in QUEUES]


def test_batch_is_all_or_nothing(alice, carol, project, sql):
    before = sql("SELECT count(*) FROM jobs")[0][0]
    good = {"kind": "probe", "queue": "inference"}
    bad = alice.post("/api/jobs/batch", json={"jobs": [good, {"kind": "probe", "queue": "gpu"}]})
    assert bad.status_code == 400 and "jobs" in bad.get_json()["error"]["fields"]
    res = alice.post("/api/jobs/batch", json={"jobs": [good, {**good, "params": {"x": 1}}]})
    assert res.status_code == 400 and "jobs.1.params" in res.get_json()["error"]["fields"]
    # a viewer may not submit into the project, even as the second of two
    res = carol.post("/api/jobs/batch", json={"jobs": [good, {**good, "project_id": project["id"]}]})
    assert res.status_code == 403
    assert alice.post("/api/jobs/batch", json={"jobs": []}).status_code == 400
    assert alice.post("/api/jobs/batch", json={"jobs": [good] * 501}).status_code == 400
    assert sql("SELECT count(*) FROM jobs")[0][0] == before
