"""Flower itself (the PyPI package, started the way `loopline up --flower` starts it) against the real pools:
a probe on every pool shows sent, received, started and succeeded; a pipeline run's stages all end SUCCESS,
the one that answers early included, and no task is left STARTED. Its HTTP API answers only when asked to
open it (`--flower-open-api`)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from api.errors import ApiError
from api.local import flower_argv, flower_env
from api.pipelines import run_chain
from tests.support.procs import ROOT, free_port, settings_env, stop_group
from tests.support.scenes import layout, scene

pytest.importorskip("flower")

QUEUES = ("inference", "augmentation", "training", "deployment")


class Flower:
    def __init__(self, settings, log_dir, *, open_api: bool):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"flower-{self.port}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "celery", *flower_argv("127.0.0.1", self.port)], cwd=ROOT,
                                         env=settings_env(settings, **flower_env(open_api)), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"Flower exited: {self.log.read_text()[-2000:]}"
            try:
                if requests.get(f"{self.url}/healthcheck", timeout=1).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet
                pass
            assert time.monotonic() < deadline, f"Flower did not come up: {self.log.read_text()[-2000:]}"
            time.sleep(0.2)

    def tasks(self) -> dict[str, dict]:
        res = requests.get(f"{self.url}/api/tasks", timeout=10)
        assert res.status_code == 200, res.text
        return res.json()

    def stop(self) -> None:
        stop_group(self.proc)


@pytest.fixture(scope="module")
def flower(settings, workers, log_dir):
    f = Flower(settings, log_dir, open_api=True)
    yield f
    f.stop()


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.25)
    return value


def whole_life(task: dict | None) -> bool:
    return bool(task) and task["state"] == "SUCCESS" and all(task.get(k) for k in ("sent", "received", "started",
                                                                                   "succeeded"))


def probe(alice, pid: int, queue: str) -> str:
    res = alice.post("/api/jobs", json={"kind": "probe", "queue": queue, "project_id": pid})
    assert res.status_code == 202, res.get_json()
    assert alice.wait_job(res.get_json()["id"])["status"] == "succeeded"
    return res.get_json()["id"]


def test_flower_sees_every_job_and_every_pipeline_stage_end(flower, app, alice, project):
    pid = project["id"]
    # Flower subscribes to events some time after it answers HTTP: once it has seen a whole probe, from its
    # task-sent on (which may arrive after the worker's events: another connection), it listens
    warmup: list[str] = []

    def listening() -> bool:
        tasks = flower.tasks()
        if any(whole_life(tasks.get(j)) for j in warmup):
            return True
        warmup.append(probe(alice, pid, "inference"))
        return False

    wait_for(listening, 60, "Flower listening")

    jobs = [probe(alice, pid, q) for q in QUEUES]
    seen = wait_for(lambda: (t := flower.tasks()) and all(whole_life(t.get(j)) for j in jobs) and t, 60,
                    "every probe's whole life in Flower")
    for queue, job_id in zip(QUEUES, jobs):
        assert seen[job_id]["name"] == f"loopline.probe.{queue}" and seen[job_id]["worker"].startswith(queue)

    # a run that its second stage ends early (deployment 0 does not exist): both stages end SUCCESS, the third
    # is never sent, nothing stays STARTED
    picture = scene(160, 120, layout(1))
    with app.app_context(), pytest.raises(ApiError, match="deployment 0"):
        run_chain(["download", "preprocess", "classify"], [{"name": "b.png"}], {0: picture}, 0)

    def stages():
        tasks = flower.tasks()
        pre = [t for t in tasks.values() if t["name"] == "loopline.stage.preprocess"]
        if len(pre) != 1 or not whole_life(pre[0]):
            return None
        chain = [t for t in tasks.values() if t.get("root_id") == pre[0]["root_id"]]
        return chain if all(whole_life(t) for t in chain) else None

    chain = wait_for(stages, 60, "the pipeline's stages finished in Flower")
    assert sorted(t["name"] for t in chain) == ["loopline.stage.download", "loopline.stage.preprocess"]
    assert [t["uuid"] for t in flower.tasks().values() if t["state"] == "STARTED"] == []


def test_flowers_http_api_is_closed_unless_asked(settings, log_dir):
    closed = Flower(settings, log_dir, open_api=False)
    try:
        assert requests.get(f"{closed.url}/api/tasks", timeout=10).status_code == 401
    finally:
        closed.stop()
