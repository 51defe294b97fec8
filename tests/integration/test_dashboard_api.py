"""What the dashboard reads and does beyond the resources themselves: retry a job, the queues with their
workers, the dataset cache's use, a dataset's health, the jobs filtered by queue."""

from __future__ import annotations

import uuid

from tests.integration.test_jobs import _submit_wait, _user_id
from tests.support.api import refused
from tests.support.modeltree import build
from tests.support.waiting import wait_until


def _probe(client, pid, queue="training") -> dict:
    res = client.post("/api/jobs", json={"kind": "probe", "queue": queue, "project_id": pid})
    assert res.status_code == 202, res.get_json()
    return res.get_json()


def test_a_probe_is_retried_with_the_same_request(alice, carol, project, workers):
    first = alice.wait_job(_probe(alice, project["id"])["id"])
    assert first["status"] == "succeeded"
    res = alice.post(f"/api/jobs/{first['id']}/retry")
    assert res.status_code == 202, res.get_json()
    again = res.get_json()
    assert again["id"] != first["id"]
    assert {k: again[k] for k in ("kind", "queue", "project_id", "params")} == \
           {k: first[k] for k in ("kind", "queue", "project_id", "params")}
    assert alice.wait_job(again["id"])["status"] == "succeeded"
    refused(carol.post(f"/api/jobs/{first['id']}/retry"), 403, "annotator")  # a viewer may not


def test_a_job_that_has_not_ended_is_not_retried(app, alice, project, workers, sql, redis_client):
    job_id, release = _submit_wait(app, project["id"], "augmentation", _user_id(sql, "alice"))
    try:
        alice.wait_job(job_id, statuses=("running",))
        refused(alice.post(f"/api/jobs/{job_id}/retry"), 409, "only a job that ended")
    finally:
        redis_client.set(release, "1")
    alice.wait_job(job_id)


def test_retry_of_an_unknown_or_foreign_job_is_404(alice, bob, project, workers):
    refused(alice.post(f"/api/jobs/{uuid.uuid4()}/retry"), 404)
    own = alice.post("/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": None}).get_json()
    alice.wait_job(own["id"])
    refused(bob.post(f"/api/jobs/{own['id']}/retry"), 404)


def test_a_dataset_build_is_retried_by_its_definition(app, alice, labelled_pets, sql, redis_client):
    """A build cancelled while queued leaves its dataset failed; its retry builds the same definition."""
    pets = labelled_pets
    with _occupied(app, alice, pets["pid"], "augmentation", sql, redis_client):
        res = alice.post("/api/datasets", json={"project_id": pets["pid"], "name": "retried", "handler": "suggest@1",
                                                "label_map_id": pets["lm"], "config": {"size": 48, "regions": 2}})
        assert res.status_code == 202, res.get_json()
        first, key = res.get_json()["job"], res.get_json()["dataset"]["key"]
        assert alice.post(f"/api/jobs/{first['id']}/cancel").get_json()["status"] == "cancelled"
    assert alice.get(f"/api/datasets/{key}").get_json()["status"] == "failed"
    res = alice.post(f"/api/jobs/{first['id']}/retry")
    assert res.status_code == 202, res.get_json()
    again = alice.wait_job(res.get_json()["id"])
    assert again["kind"] == "dataset.build" and again["status"] == "succeeded"
    rebuilt = alice.get(f"/api/datasets/{key}").get_json()
    assert rebuilt["status"] == "ready" and rebuilt["job_id"] == again["id"]
    refused(alice.post(f"/api/jobs/{again['id']}/retry"), 409, "is ready")
    assert alice.delete(f"/api/datasets/{key}").status_code == 204
    refused(alice.post(f"/api/jobs/{again['id']}/retry"), 409, "is gone")


def test_a_dataset_manifest_carries_its_health(alice, labelled_pets, sql):
    pets = labelled_pets
    dataset = build(alice, pets["pid"], pets["lm"], "detection@1", {"validation_fraction": 0.2})
    health = dataset["manifest"]["health"]
    boxes = sql("SELECT COUNT(*) FROM annotations a JOIN images i ON i.id = a.image_id JOIN classes c ON c.id = a.class_id "
                "WHERE i.project_id = :p AND c.name IN ('cat', 'dog')", p=pets["pid"])[0][0]
    splits = health["splits"]
    assert sum(s["records"] for s in splits.values()) == 30  # one record per image for detection
    assert sum(s["objects"] for s in splits.values()) == boxes
    assert set().union(*(s["classes"] for s in splits.values())) == {"cat", "dog"}
    assert sum(health["objects_per_image"].values()) == 30
    assert sum(health["box_sizes"].values()) == boxes
    assert splits["validation"]["records"] > 0


def test_the_cache_says_what_it_holds(alice, labelled_pets, settings):
    pets = labelled_pets
    build(alice, pets["pid"], pets["lm"], "suggest@1", {"size": 40, "regions": 1})
    cache = alice.get("/api/dataset-cache").get_json()
    assert cache["quota_bytes"] == settings.dataset_cache_bytes
    assert cache["datasets"] >= 1 and cache["used_bytes"] > 0


def test_queues_show_their_workers_and_what_they_run(app, alice, project, workers, sql, redis_client):
    job_id, release = _submit_wait(app, project["id"], "training", _user_id(sql, "alice"))
    try:
        alice.wait_job(job_id, statuses=("running",))

        def running_on_training(client):
            queues = {q["name"]: q for q in client.get("/api/queues").get_json()}
            return [a for w in queues["training"]["workers"] for a in w["active"]] or None

        seen = wait_until(lambda: running_on_training(alice), 10, "the training worker reports the job it runs")
        assert {"job_id": job_id, "kind": "test.wait"} in seen
    finally:
        redis_client.set(release, "1")
    alice.wait_job(job_id)
    queues = {q["name"]: q for q in alice.get("/api/queues").get_json()}
    assert set(queues) == {"inference", "augmentation", "training", "deployment"}
    for name, queue in queues.items():
        assert queue["workers"], f"no worker listed for {name}"
        worker = queue["workers"][0]
        assert worker["name"].startswith(name) and "@" in worker["name"] and worker["concurrency"] >= 1
        assert worker["pool"] == queue["pool"] and worker["versions"]["celery"]  # as the queue table prescribes
    assert queues["training"]["finished_last_hour"] >= 1


def test_an_outsider_sees_a_running_job_by_kind_only(app, alice, project, workers, sql, redis_client, client):
    from tests.support.api import ApiClient

    job_id, release = _submit_wait(app, project["id"], "deployment", _user_id(sql, "alice"))
    try:
        alice.wait_job(job_id, statuses=("running",))
        dave = _new_user(app, "dave-" + uuid.uuid4().hex[:6])
        stranger = ApiClient(client, dave)

        def on_deployment():
            queues = {q["name"]: q for q in stranger.get("/api/queues").get_json()}
            return [a for w in queues["deployment"]["workers"] for a in w["active"]] or None

        seen = wait_until(on_deployment, 10, "the deployment worker reports its job")
        assert seen == [{"job_id": None, "kind": "test.wait"}]
    finally:
        redis_client.set(release, "1")
    alice.wait_job(job_id)


def _new_user(app, name) -> str:
    from store.accounts import create_user, issue_token

    runtime = app.extensions["loopline.runtime"]
    with runtime.sessions() as session:
        token = issue_token(session, create_user(session, name))
        session.commit()
    return token


def test_jobs_filter_by_queue(alice, project, workers):
    pid = project["id"]
    ids = {q: _probe(alice, pid, q)["id"] for q in ("inference", "deployment")}
    listed = alice.get(f"/api/jobs?project_id={pid}&queue=deployment").get_json()["items"]
    assert [j["id"] for j in listed] == [ids["deployment"]]
    refused(alice.get("/api/jobs?queue=nowhere"), 400)
    for job_id in ids.values():
        alice.wait_job(job_id)


def test_training_and_deployment_are_retried_on_the_same_checkpoint(app, alice, pets, sql, redis_client):
    """A training run cancelled while queued (no epoch done: the checkpoint is fresh again) and a deployment
    cancelled while queued are each retried into a run that succeeds, with the same parameters."""
    from tests.support.modeltree import fork, root, train

    child = fork(alice, pets, root(alice, pets))
    with _occupied(app, alice, pets["pid"], "training", sql, redis_client):
        first = train(alice, pets, child, epochs=1, batch_size=16, learning_rate=2e-3)["job"]
        assert alice.post(f"/api/jobs/{first['id']}/cancel").get_json()["status"] == "cancelled"
    assert alice.get(f"{pets['base']}/checkpoints/{child['id']}").get_json()["status"] == "fresh"
    res = alice.post(f"/api/jobs/{first['id']}/retry")
    assert res.status_code == 202, res.get_json()
    assert alice.wait_job(res.get_json()["id"], timeout=180)["status"] == "succeeded"
    trained = alice.get(f"{pets['base']}/checkpoints/{child['id']}").get_json()
    assert trained["status"] == "trained" and trained["params"]["learning_rate"] == 2e-3
    refused(alice.post(f"/api/jobs/{first['id']}/retry"), 409, "trained since")

    with _occupied(app, alice, pets["pid"], "deployment", sql, redis_client):
        made = alice.post(f"{pets['base']}/deployments", json={"checkpoint_id": child["id"], "activate": False})
        assert made.status_code == 202, made.get_json()
        job_id = made.get_json()["job"]["id"]
        assert alice.post(f"/api/jobs/{job_id}/cancel").get_json()["status"] == "cancelled"
    res = alice.post(f"/api/jobs/{job_id}/retry")
    assert res.status_code == 202, res.get_json()
    assert alice.wait_job(res.get_json()["id"], timeout=180)["status"] == "succeeded"
    deployed = alice.get(f"{pets['base']}/deployments?checkpoint_id={child['id']}").get_json()["items"]
    assert sorted(d["status"] for d in deployed) == ["cancelled", "ready"]
    assert {d["checkpoint_id"] for d in deployed} == {child["id"]}
    assert alice.get(f"{pets['base']}/deployments?checkpoint_id={child['parent_id']}").get_json()["items"] == []
    assert not any(d["active"] for d in deployed)  # retried with the same `activate: false`


class _occupied:
    """Every process of a queue's pool runs a test.wait job until the block ends: what is sent meanwhile stays queued."""

    def __init__(self, app, client, pid, queue, sql, redis_client):
        self.app, self.client, self.pid, self.queue, self.sql, self.redis = app, client, pid, queue, sql, redis_client

    def __enter__(self):
        queues = {q["name"]: q for q in self.client.get("/api/queues").get_json()}
        slots = sum(w["concurrency"] for w in queues[self.queue]["workers"])
        self.blockers = [_submit_wait(self.app, self.pid, self.queue, _user_id(self.sql, "alice")) for _ in range(slots)]
        for job_id, _ in self.blockers:
            self.client.wait_job(job_id, statuses=("running",))
        return self

    def __exit__(self, *exc):
        for _, release in self.blockers:
            self.redis.set(release, "1")
        for job_id, _ in self.blockers:
            self.client.wait_job(job_id)
