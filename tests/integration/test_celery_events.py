"""Celery's own monitoring sees loopline's work: with Celery's event receiver (what `celery -A workers events`
and Flower use) on the test broker, a probe on every pool and pipeline runs through the inference pool each
show task-sent, task-received, task-started and task-succeeded, and Celery's own state keeper (Flower's)
ends every one of them SUCCESS: none is left STARTED. Interactive calls (suggestions) send none."""

from __future__ import annotations

import contextlib
import io
import threading
import time
import uuid

import pytest
from celery import states

from api.errors import ApiError
from api.pipelines import run_chain
from tests.support.scenes import layout, scene
from services.calls import call, task_name

QUEUES = ("inference", "augmentation", "training", "deployment")
LIFE = {"task-sent", "task-received", "task-started", "task-succeeded"}
MARKER = "loopline-test-marker"


class Watch:
    """`app.events.Receiver` over its own broker connection in a thread: every event in arrival order, and
    Celery's `events.State` fed with them."""

    def __init__(self, celery_app):
        self.app = celery_app
        self.events: list[dict] = []
        self.state = celery_app.events.State()
        self.changed = threading.Condition()
        self.receiver = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="celery-events", daemon=True)

    def _on_event(self, event: dict) -> None:
        with self.changed:
            self.events.append(event)
            self.state.event(event)
            self.changed.notify_all()

    def _run(self) -> None:
        try:
            with self.app.connection() as conn:
                self.receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
                self.receiver.capture(limit=None, timeout=None, wakeup=False)
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self.error = exc
            with self.changed:
                self.changed.notify_all()

    def wait(self, check, timeout: float, what: str):
        """Block until `check()` (called under the lock) is truthy; fail naming `what` and the events seen."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not (value := check()):
                assert self.error is None, f"the event receiver stopped: {self.error!r}"
                left = deadline - time.monotonic()
                assert left > 0, f"timed out after {timeout:g} s: {what}; saw {self.summary()}"
                self.changed.wait(left)
            return value

    def start(self) -> None:
        self.thread.start()
        self.sync()

    def sync(self) -> None:
        """Send a marker event until the receiver has seen one. At start, that is when it is subscribed (Redis
        delivers events only to subscribers); later, Redis delivers to it in the order it took the publishes,
        so every event published before this call has been received when it returns."""
        token = uuid.uuid4().hex
        with self.app.connection() as conn:
            dispatcher = self.app.events.Dispatcher(conn)
            deadline = time.monotonic() + 30
            while True:
                dispatcher.send(MARKER, token=token)
                with self.changed:
                    if self.changed.wait_for(lambda: self.error or any(e.get("token") == token for e in self.events),
                                             timeout=0.2):
                        break
                assert time.monotonic() < deadline, "the event receiver never saw its own marker"
            dispatcher.close()
        assert self.error is None, f"the event receiver stopped: {self.error!r}"

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.should_stop = True
        self.thread.join(timeout=10)

    # --- reading what was seen (call under the lock, or after stop) ---------------------------------------
    def types(self, task_id: str) -> list[str]:
        return [e["type"] for e in self.events if e.get("uuid") == task_id]

    def sent(self, name: str) -> list[dict]:
        return [e for e in self.events if e["type"] == "task-sent" and e.get("name") == name]

    def summary(self) -> dict:
        out: dict[str, list[str]] = {}
        for e in self.events:
            if "uuid" in e:
                out.setdefault(e["uuid"], []).append(e["type"])
        return out


@contextlib.contextmanager
def watching(celery_app):
    watch = Watch(celery_app)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()


def lived(watch: Watch, task_ids) -> bool:
    return all(LIFE <= set(watch.types(t)) for t in task_ids)


def test_jobs_and_pipeline_stages_show_their_whole_life_in_celery_events(app, alice, project, workers, celery_app,
                                                                         runtime):
    pid = project["id"]
    picture = scene(160, 120, layout(1))
    with watching(celery_app) as watch:
        # a probe job on every pool (threads, prefork, solo): visible from the moment it is queued
        jobs = []
        for queue in QUEUES:
            res = alice.post("/api/jobs", json={"kind": "probe", "queue": queue, "project_id": pid})
            assert res.status_code == 202, res.get_json()
            jobs.append(res.get_json()["id"])
        for job_id in jobs:
            assert alice.wait_job(job_id)["status"] == "succeeded"
        watch.wait(lambda: lived(watch, jobs), 60, "sent, received, started and succeeded for every probe")
        for job_id in jobs:
            sent = [e for e in watch.events if e.get("uuid") == job_id and e["type"] == "task-sent"]
            assert len(sent) == 1 and sent[0]["queue"] in QUEUES and sent[0]["name"].startswith("loopline.probe.")

        # a pipeline run through the API: its last (here only) stage answers and ends succeeded
        res = alice.post("/api/pipelines/download/runs", content_type="multipart/form-data",
                         data={"files": [(io.BytesIO(picture), "a.png")], "project_id": str(pid)})
        assert res.status_code == 200, res.get_json()
        (alone,) = watch.wait(lambda: watch.sent("loopline.stage.download"), 30, "the download stage sent")
        watch.wait(lambda: lived(watch, [alone["uuid"]]), 60, "the download stage's whole life")

        # a run that a stage ends early (the API's own chain sender; deployment 0 does not exist): download hands
        # on to preprocess, which answers the error, succeeds, and never sends classify
        with app.app_context(), pytest.raises(ApiError, match="stage preprocess: LookupError: deployment 0"):
            run_chain(["download", "preprocess", "classify"], [{"name": "b.png"}], {0: picture}, 0)
        (pre,) = watch.wait(lambda: watch.sent("loopline.stage.preprocess"), 30, "the preprocess stage sent")
        (first,) = [e for e in watch.sent("loopline.stage.download") if e["uuid"] == pre["parent_id"]]
        assert pre["root_id"] == first["uuid"] == first["root_id"]
        watch.wait(lambda: lived(watch, [first["uuid"], pre["uuid"]]), 60, "both stages' whole lives")

        # an interactive call sends no task events (services/calls.py): its task-sent would have been published
        # before the caller waits, its task-received and task-started before the worker answers (deployment 0
        # does not exist: it answers the error), so before the marker that sync() publishes after the answer
        answer = call(celery_app, runtime, "suggest", {"deployment_id": 0, "blob_key": "0" * 64,
                                                        "region": [0, 0, 8, 8]}, timeout=30)
        assert answer["ok"] is False and "deployment 0" in answer["error"]
        watch.sync()
        assert [e for e in watch.events if e.get("name") == task_name("suggest")] == []
    # The worker sends a chain's next stage before its own task-succeeded (Celery's trace hands on, then the
    # pool reports), and Redis delivers publishes in the order it took them: classify would have been seen.
    assert watch.sent("loopline.stage.classify") == []
    # Every task id of these runs, in Celery's own state keeper (what Flower shows): all SUCCESS, none STARTED.
    ours = [*jobs, alone["uuid"], first["uuid"], pre["uuid"]]
    seen = {e["uuid"] for e in watch.events if e.get("root_id") in ours or e.get("uuid") in ours}
    assert seen == set(ours), watch.summary()
    assert {t: watch.state.tasks[t].state for t in ours} == {t: states.SUCCESS for t in ours}
    assert watch.state.tasks[pre["uuid"]].result and "'ok': False" in watch.state.tasks[pre["uuid"]].result
