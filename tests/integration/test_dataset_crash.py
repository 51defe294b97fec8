"""A worker killed in the middle of a dataset build: the build is redelivered and finishes once, and no
partial dataset is ever ready or served."""

from __future__ import annotations

import signal
import time

from handlers.registry import default_registry
from store.schema import Dataset, Job, LabelMap
from tests.support.catalog import labelled_project
from services.datasets import define, request_dataset

IMAGES = 80


def _state(runtime, key) -> tuple[Dataset, Job]:
    with runtime.sessions() as session:
        dataset = session.query(Dataset).filter_by(key=key).one()
        return dataset, session.get(Job, dataset.job_id)


def test_killed_build_is_redelivered_and_published_once(isolated):
    iso, runtime, celery, start = isolated
    pid, uid, lm = labelled_project(iso, runtime, IMAGES)
    first = start("augmentation")
    with runtime.sessions() as session:
        definition = define(session, project_id=pid, name="crash", handler=default_registry().get("detection@1"),
                            config={"variations": 12, "size": 320, "rotation": 10, "crop": 0.2},
                            label_map=session.get(LabelMap, lm))
        answer = request_dataset(celery, runtime, session, definition, uid)
        session.commit()
        key = definition.key
        assert answer.job is not None and not answer.hit
    deadline = time.monotonic() + 60
    while (state := _state(runtime, key))[1].progress < 0.2:
        assert state[1].status.value in ("queued", "running") and time.monotonic() < deadline, state[1].status
        time.sleep(0.01)
    first.kill(signal.SIGKILL)
    dataset, job = _state(runtime, key)
    assert dataset.status.value == "building" and dataset.blob_key is None  # nothing half-built is visible
    assert list((iso.work_dir).iterdir()), "the killed build left its scratch folder"

    start("augmentation", LOOPLINE_VISIBILITY_TIMEOUTS='{"augmentation": 1}')
    deadline = time.monotonic() + 180
    while (state := _state(runtime, key))[1].status.value not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the redelivered build did not finish"
        time.sleep(0.2)
    dataset, job = state
    assert job.status.value == "succeeded" and job.attempts == 2, job.error
    assert dataset.status.value == "ready" and runtime.blobs.exists(dataset.blob_key)
    assert dataset.manifest["records"]["train"] + dataset.manifest["records"]["validation"] > IMAGES
    assert list(iso.work_dir.iterdir()) == []  # the scratch folder of the killed build is gone too
    with runtime.sessions() as session:
        assert session.query(Dataset).filter_by(key=key).count() == 1
        assert session.query(Job).filter_by(kind="dataset.build").count() == 1
