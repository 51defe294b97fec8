"""Cancelling a job that no worker has taken yet settles its resource in the same transaction (checked in
SQL), and the next request or training run works. Own Redis database and catalog, no pools: the messages
wait in the queue, so every job here is still queued when it is cancelled."""

from __future__ import annotations

from sqlalchemy import text

from handlers.registry import default_registry
from store.schema import Checkpoint, CheckpointStatus, Dataset, DatasetStatus, LabelMap
from tests.support.catalog import labelled_project
from services import jobs as job_service
from services.checkpoints import start_training
from services.datasets import define, request_dataset
from services.deployments import request_deployment


def _definition(session, pid: int, lm: int):
    return define(session, project_id=pid, name="c", handler=default_registry().get("detection@1"), config={},
                  label_map=session.get(LabelMap, lm))


def _one(runtime, statement: str, **params):
    with runtime.engine.connect() as conn:
        return conn.execute(text(statement), params).one()


def test_a_cancelled_queued_build_leaves_its_dataset_failed_and_the_next_request_builds_it(isolated):
    iso, runtime, celery, _ = isolated
    pid, uid, lm = labelled_project(iso, runtime, 2)
    with runtime.sessions() as session:
        definition = _definition(session, pid, lm)
        first = request_dataset(celery, runtime, session, definition, uid)
        session.commit()
        job_service.cancel(celery, runtime, session, first.job.id)
        session.commit()
    row = _one(runtime, "SELECT d.status, d.error, j.status AS job FROM datasets d JOIN jobs j ON j.id = d.job_id "
                        "WHERE d.key = :k", k=definition.key)
    assert tuple(row) == ("failed", "the build was cancelled", "cancelled")
    with runtime.sessions() as session:
        again = request_dataset(celery, runtime, session, definition, uid)
        session.commit()
    assert again.job.id != first.job.id and not again.hit
    row = _one(runtime, "SELECT status, job_id, error FROM datasets WHERE key = :k", k=definition.key)
    assert tuple(row) == ("building", again.job.id, None)


def _trained_checkpoint(runtime, pid: int, uid: int) -> int:
    with runtime.sessions() as session:
        ck = Checkpoint(project_id=pid, name="t", architecture="box_suggester", status=CheckpointStatus.trained,
                        weights_key="0" * 64, classes=["cat", "dog"], config={"source": "test", "input_size": 64,
                                                                             "seed": 0}, created_by=uid)
        session.add(ck)
        session.commit()
        return ck.id


def test_a_cancelled_queued_deployment_is_cancelled_and_deploying_again_works(isolated):
    iso, runtime, celery, _ = isolated
    pid, uid, _ = labelled_project(iso, runtime, 1)
    ck = _trained_checkpoint(runtime, pid, uid)
    with runtime.sessions() as session:
        first = request_deployment(celery, runtime, session, session.get(Checkpoint, ck), activate=True, user_id=uid)
        session.commit()
        job_service.cancel(celery, runtime, session, first.job_id)
        session.commit()
    row = _one(runtime, "SELECT d.status, d.active, j.status AS job FROM deployments d JOIN jobs j ON j.id = d.job_id "
                        "WHERE d.id = :d", d=first.id)
    assert (row.status, bool(row.active), row.job) == ("cancelled", False, "cancelled")
    with runtime.sessions() as session:
        second = request_deployment(celery, runtime, session, session.get(Checkpoint, ck), activate=True, user_id=uid)
        session.commit()
    assert _one(runtime, "SELECT status FROM deployments WHERE id = :d", d=second.id).status == "building"


def test_a_cancelled_queued_training_run_leaves_the_checkpoint_trainable(isolated):
    iso, runtime, celery, _ = isolated
    pid, uid, lm = labelled_project(iso, runtime, 1)
    with runtime.sessions() as session:
        ck = Checkpoint(project_id=pid, name="f", architecture="box_suggester", status=CheckpointStatus.fresh,
                        classes=[], config={"source": "architecture", "input_size": 64, "seed": 0}, created_by=uid)
        dataset = Dataset(key="k" * 64, project_id=pid, name="d", handler="suggest", handler_version=1, config={},
                          label_map_id=lm, subset="all", data_revision="r", status=DatasetStatus.ready,
                          blob_key="0" * 64, manifest={"label_map": {"classes": ["cat", "dog"]}})
        session.add_all([ck, dataset])
        session.commit()
        job = start_training(celery, runtime, session, ck, dataset, {"epochs": 1}, uid)
        session.commit()
        job_service.cancel(celery, runtime, session, job.id)
        session.commit()
    row = _one(runtime, "SELECT c.status, c.weights_key, j.status AS job FROM checkpoints c JOIN jobs j "
                        "ON j.id = c.job_id WHERE c.id = :c", c=ck.id)
    assert (row.status, row.weights_key, row.job) == ("fresh", None, "cancelled")
    with runtime.sessions() as session:
        again = start_training(celery, runtime, session, session.get(Checkpoint, ck.id),
                               session.get(Dataset, dataset.id), {"epochs": 1}, uid)
        session.commit()
    row = _one(runtime, "SELECT status, job_id FROM checkpoints WHERE id = :c", c=ck.id)
    assert (row.status, row.job_id) == ("training", again.id)


def test_cancelling_an_ended_job_is_refused_and_changes_nothing(isolated):
    iso, runtime, celery, _ = isolated
    pid, uid, lm = labelled_project(iso, runtime, 2)
    with runtime.sessions() as session:
        definition = _definition(session, pid, lm)
        job_id = request_dataset(celery, runtime, session, definition, uid).job.id
        session.commit()
        job_service.cancel(celery, runtime, session, job_id)
        session.commit()
        try:
            job_service.cancel(celery, runtime, session, job_id)
            session.commit()
        except job_service.JobStateError as exc:
            assert "already cancelled" in str(exc)
        else:
            raise AssertionError("a second cancel was accepted")
    assert _one(runtime, "SELECT status FROM jobs WHERE id = :j", j=job_id).status == "cancelled"
