"""Redis restarted empty (SIGKILL, nothing kept on disk) while 200 jobs across the four queues are queued or
running: every job answered 202 reaches a terminal state, each run exactly once, soon after Redis is back;
jobs submitted while Redis is down are accepted and run afterwards; a dataset build whose message was lost is
built, and the next request for it is answered from it. Everything here runs on a Redis server and a catalog
of the test's own, with real worker pools, the real API under gunicorn and the reaper's loop."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests

from handlers.registry import default_registry
from store import migrate
from store.accounts import create_user, issue_token
from store.schema import Dataset, Job, JobStatus, LabelMap
from tests.support.catalog import labelled_project
from tests.support.procs import Server, Worker, wait_for_workers
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until
from services import jobs as job_service
from workers.celery_app import create_celery
from services.datasets import define, request_dataset
from services.queues import Queue
from services.runtime import Runtime
from workers.sweeper import Sweeper

QUEUES = [q for q in Queue]
PER_QUEUE = 50
BACK_WITHIN = 60  # seconds after Redis is back by which every accepted job has ended


@pytest.fixture()
def stack(settings, tmp_path):
    """Own Redis, own SQLite catalog, one pool per queue, the API and the reaper's loop (in a thread)."""
    server = RedisServer(tmp_path)
    iso = settings.model_copy(update={"data_dir": tmp_path / "data", "database_url": None, "redis_url": server.url,
                                      "dispatch_grace": 2.0})
    iso.ensure_dirs()
    migrate.upgrade(iso.sqlalchemy_url)
    runtime = Runtime(iso)
    celery = create_celery(iso, include_tasks=False)
    pools = [Worker(iso, q.value, tmp_path) for q in QUEUES]
    api = messages = stop = loop = None
    try:
        wait_for_workers(celery, pools)
        api = Server(iso, tmp_path)
        messages: list[str] = []
        stop = threading.Event()
        sweeper = Sweeper(iso, celery, echo=messages.append)
        loop = threading.Thread(target=sweeper.run_forever, args=(0.5, stop), daemon=True)
        loop.start()
        yield {"settings": iso, "runtime": runtime, "celery": celery, "redis": server, "api": api,
               "messages": messages, "runs": tmp_path / "runs"}
    finally:
        if stop is not None:
            stop.set()
            loop.join(timeout=30)
        if api is not None:
            api.stop()
        for w in pools:
            w.stop()
        runtime.close()
        server.stop()


def _jobs(runtime, ids) -> dict[str, Job]:
    with runtime.sessions() as session:
        return {j.id: j for j in session.query(Job).filter(Job.id.in_(list(ids)))}


def test_a_redis_restart_loses_no_accepted_job(stack):
    rt, celery, redis_server, api = stack["runtime"], stack["celery"], stack["redis"], stack["api"]
    runs = stack["runs"]
    runs.mkdir()
    pid, uid, lm = labelled_project(stack["settings"], rt, 3)
    with rt.sessions() as session:
        token = issue_token(session, create_user(session, "operator", superuser=True))
        session.commit()
    headers = {"Authorization": f"Bearer {token}"}

    # 200 jobs, 50 per queue, each a little work; then a dataset build queued behind them
    with rt.sessions() as session:
        specs = [{"kind": "test.count", "queue": q, "project_id": pid, "params": {"runs_dir": str(runs), "seconds": 0.15}}
                 for q in QUEUES for _ in range(PER_QUEUE)]
        accepted = [j.id for j in job_service.submit_many(celery, rt, session, specs)]
        session.commit()
        definition = define(session, project_id=pid, name="outage", handler=default_registry().get("detection@1"),
                            config={}, label_map=session.get(LabelMap, lm))
        build = request_dataset(celery, rt, session, definition, uid)
        session.commit()
        assert build.job is not None and not build.hit
        accepted.append(build.job.id)

    def counts() -> Counter:
        return Counter(j.status for j in _jobs(rt, accepted).values())

    wait_until(lambda: counts()[JobStatus.succeeded] >= 8 and counts()[JobStatus.running] >= 1, 60,
               "some jobs done and some running")
    redis_server.kill()
    down = counts()
    assert down[JobStatus.queued] > 50, down  # most are waiting: their messages die with Redis

    # while Redis is down: the API still accepts jobs, and the reaper's loop waits it out
    while_down = []
    for _ in range(10):
        res = requests.post(api.url + "/api/jobs", json={"kind": "probe", "queue": "deployment", "project_id": pid},
                            headers=headers, timeout=30)
        assert res.status_code == 202, res.text
        assert res.json()["status"] == "queued"
        while_down.append(res.json()["id"])
    with rt.sessions() as session:
        specs = [{"kind": "test.count", "queue": q, "project_id": pid, "params": {"runs_dir": str(runs)}}
                 for q in QUEUES]
        while_down += [j.id for j in job_service.submit_many(celery, rt, session, specs)]
        session.commit()
    wait_until(lambda: any("unreachable" in m for m in stack["messages"]), 30, "the reaper noticed the outage")
    time.sleep(1)  # a little longer down, so the reaper's loop really is in its back-off

    redis_server.start()
    back = time.monotonic()
    everything = accepted + while_down
    wait_until(lambda: all(j.status.terminal for j in _jobs(rt, everything).values()), BACK_WITHIN,
               "every accepted job ended after Redis came back", every=0.2)
    jobs = _jobs(rt, everything)
    assert {j.status for j in jobs.values()} == {JobStatus.succeeded}, \
        {j.id: (j.status.value, j.error) for j in jobs.values() if j.status is not JobStatus.succeeded}
    assert time.monotonic() - back < BACK_WITHIN

    # each counting job ran exactly once: one start and one finish
    counting = [j for j in jobs.values() if j.kind == "test.count"]
    starts = Counter(p.name.split(".")[1] for p in runs.glob("start.*"))
    finishes = Counter(p.name.split(".")[1] for p in runs.glob("done.*"))
    assert len(counting) == 4 * PER_QUEUE + 4
    assert all(starts[j.id] == 1 and finishes[j.id] == 1 for j in counting), \
        {j.id: (starts[j.id], finishes[j.id]) for j in counting if (starts[j.id], finishes[j.id]) != (1, 1)}
    assert sum(j.sends > 1 for j in jobs.values()) >= 50  # the lost ones really were sent again

    # the dataset whose build message was lost is built, and the next request is served from it
    with rt.sessions() as session:
        dataset = session.query(Dataset).filter_by(key=definition.key).one()
        assert dataset.status.value == "ready"
        again = request_dataset(celery, rt, session, define(
            session, project_id=pid, name="outage", handler=default_registry().get("detection@1"), config={},
            label_map=session.get(LabelMap, lm)), uid)
        session.commit()
        assert again.hit and again.job is None
        assert session.query(Job).filter_by(kind="dataset.build").count() == 1

    # the reaper's loop said once that the services were gone and once that they were back
    assert sum("unreachable" in m for m in stack["messages"]) == 1
    assert sum("answer again" in m for m in stack["messages"]) == 1


def test_an_unreachable_catalog_answers_503_with_retry_after(settings, tokens):
    """Nothing can be accepted without the catalog: the answer says so and when to try again, never a 500."""
    from api import create_app

    down = settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    client = create_app(down).test_client()
    res = client.post("/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": None},
                      headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert res.status_code == 503, res.get_json()
    assert res.headers["Retry-After"].isdigit()
    assert res.get_json()["error"]["code"] == "unavailable" and "catalog" in res.get_json()["error"]["message"]
