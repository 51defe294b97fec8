"""A worker killed in the middle of a dataset build: the build is redelivered and finishes once, and no
partial dataset is ever ready or served."""

from __future__ import annotations

import signal
import time

from handlers.registry import default_registry
from store.accounts import create_user
from store.schema import (
    Annotation,
    AnnotationSource,
    AnnotationStatus,
    Dataset,
    Job,
    LabelClass,
    LabelMap,
    LabelMapEntry,
    Project,
)
from tests.support.scenes import layout, scene
from workers.datasets import define, request_dataset
from workers.ingest import Ingestor, Report

IMAGES = 80


def _labelled_project(iso, runtime) -> tuple[int, int, int]:
    with runtime.sessions() as session:
        user = create_user(session, "builder")
        project = Project(name="crash", description="", created_by=user.id, stats={})
        session.add(project)
        session.flush()
        classes = {n: LabelClass(project_id=project.id, name=n) for n in ("cat", "dog")}
        session.add_all(classes.values())
        session.flush()
        label_map = LabelMap(project_id=project.id, name="pets")
        label_map.entries = [LabelMapEntry(position=i, class_id=classes[n].id) for i, n in enumerate(("cat", "dog"))]
        session.add(label_map)
        session.commit()
        pid, uid, lm = project.id, user.id, label_map.id
    report = Report()
    ingestor = Ingestor(runtime.sessions, runtime.blobs, iso, project_id=pid, job_id="setup", user_id=uid)
    ingestor.store([(f"s{i}.png", scene(320, 240, layout(i, 320, 240))) for i in range(IMAGES)], report)
    with runtime.sessions() as session:
        for entry in report.files:
            i = int(entry["name"][1:-4])
            for name, x, y, w, h in layout(i, 320, 240):
                session.add(Annotation(image_id=entry["image_id"], class_id=classes[name].id, x=x, y=y, w=w, h=h,
                                       source=AnnotationSource.human, status=AnnotationStatus.accepted))
        session.commit()
    return pid, uid, lm


def _state(runtime, key) -> tuple[Dataset, Job]:
    with runtime.sessions() as session:
        dataset = session.query(Dataset).filter_by(key=key).one()
        return dataset, session.get(Job, dataset.job_id)


def test_killed_build_is_redelivered_and_published_once(isolated):
    iso, runtime, celery, start = isolated
    pid, uid, lm = _labelled_project(iso, runtime)
    first = start("augmentation")
    with runtime.sessions() as session:
        definition = define(session, project_id=pid, name="crash", handler=default_registry().get("detection@1"),
                            config={"variations": 12, "size": 320, "rotation": 10, "crop": 0.2},
                            label_map=session.get(LabelMap, lm))
        answer = request_dataset(celery, runtime, session, definition, uid)
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
