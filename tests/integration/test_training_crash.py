"""A training worker SIGKILLed after epoch 1 of 3: the reaper hands its message back, and the redelivered
job loads epoch 1's file and trains epochs 2 and 3 into the same checkpoint."""

from __future__ import annotations

import signal
import time

from handlers.registry import default_registry
from store.schema import Checkpoint, CheckpointStatus, Dataset, Job, LabelMap
from tests.support.catalog import labelled_project
from tests.support.waiting import wait_until
from services.checkpoints import start_training
from services.datasets import define, request_dataset
from services.reaper import reap

PARAMS = {"epochs": 3, "batch_size": 4, "learning_rate": 1e-3, "early_stopping": None, "reinit_head": False,
          "report_every_steps": 10, "seed": 0}


def _dataset(iso, runtime, celery, start) -> tuple[int, int, Dataset]:
    pid, uid, lm = labelled_project(iso, runtime, 24)
    start("augmentation")
    with runtime.sessions() as session:
        definition = define(session, project_id=pid, name="suggest", handler=default_registry().get("suggest@1"),
                            config={"size": 128, "regions": 16}, label_map=session.get(LabelMap, lm))
        request_dataset(celery, runtime, session, definition, uid)
        session.commit()
        key = definition.key

    def ready():
        with runtime.sessions() as session:
            d = session.query(Dataset).filter_by(key=key).one()
            assert d.status.value != "failed", d.error
            return d if d.status.value == "ready" else None

    return pid, uid, wait_until(ready, 120, "the dataset was not built")


def _checkpoint(runtime, checkpoint_id) -> tuple[Checkpoint, Job | None]:
    with runtime.sessions() as session:
        ck = session.get(Checkpoint, checkpoint_id)
        return ck, (session.get(Job, ck.job_id) if ck.job_id else None)


def test_killed_training_resumes_from_the_last_finished_epoch(isolated):
    iso, runtime, celery, start = isolated
    pid, uid, dataset = _dataset(iso, runtime, celery, start)
    first = start("training")  # before the job: a solo pool that is busy answers no ping
    with runtime.sessions() as session:
        root = Checkpoint(project_id=pid, name="root", architecture="box_suggester", status=CheckpointStatus.fresh,
                          label_map_id=dataset.label_map_id, classes=["cat", "dog"],
                          config={"source": "architecture", "input_size": 128, "seed": 0}, created_by=uid)
        session.add(root)
        session.flush()
        child = Checkpoint(project_id=pid, parent_id=root.id, name="child", architecture="box_suggester",
                           status=CheckpointStatus.fresh, label_map_id=dataset.label_map_id, classes=["cat", "dog"],
                           config={"source": "fork", "input_size": 128, "seed": 0}, created_by=uid)
        session.add(child)
        session.commit()
        start_training(celery, runtime, session, child, session.get(Dataset, dataset.id), PARAMS, uid)
        session.commit()
        child_id = child.id
    wait_until(lambda: _checkpoint(runtime, child_id)[0].state.get("epochs_done"), 240, "epoch 1 never finished")
    first.kill(signal.SIGKILL)
    ck, job = _checkpoint(runtime, child_id)
    assert ck.state["epochs_done"] == 1, "the worker was killed too late for this test to mean anything"
    assert ck.status is CheckpointStatus.training and job.status.value == "running"
    epoch_one = ck.curve[1]

    # a new pool with the queue's own settings (visibility timeout: a week); the reaper sees the dead
    # heartbeat and puts the in-flight message back in the queue at once
    start("training")
    time.sleep(iso.heartbeat_ttl + 0.5)
    assert reap(runtime).requeued == [job.id]
    wait_until(lambda: _checkpoint(runtime, child_id)[1].status.terminal, 300, "the redelivered job did not finish")
    ck, job = _checkpoint(runtime, child_id)
    assert job.status.value == "succeeded" and job.attempts == 2, job.error
    assert job.details.get("resumed_from_epoch") == 1
    assert ck.status is CheckpointStatus.trained and ck.weights_key and ck.state["epochs_done"] == 3
    assert [e["epoch"] for e in ck.curve] == [0, 1, 2, 3]
    assert ck.curve[1] == epoch_one  # epoch 1 was not trained again
    assert ck.metrics["epochs_trained"] == 3 and runtime.blobs.exists(ck.weights_key)
    with runtime.sessions() as session:
        assert session.query(Checkpoint).count() == 2  # root and child: no second checkpoint for the run
        assert session.query(Job).filter_by(kind="checkpoint.train").count() == 1
    assert not list(iso.work_dir.glob("train-*"))  # the killed run's scratch folder is gone too
