"""An inference worker SIGKILLed in the middle of a pre-annotation job: the inference pool acks on receipt, so
the broker no longer holds the message; the reaper's loop (`workers.sweeper`, as `loopline reaper` runs it)
puts the job back in the outbox and sends it again — a batch job's message never expires — and a new
worker finishes it. Each image ends with its proposals stored once, and the job's result counts the whole
job (both attempts), in agreement with the catalog."""

from __future__ import annotations

import io
import signal
import threading
from collections import Counter

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from models.architectures import get_architecture
from models.detection import decode
from models.predictor import Predictor, to_input
from store.accounts import create_user
from store.schema import (Annotation, AnnotationSource, AnnotationStatus, Checkpoint, CheckpointStatus, Deployment,
                          DeploymentStatus, DeploymentTask, Image, Job, LabelClass, Project)
from tests.support.scenes import scene
from tests.support.waiting import wait_until
from services import jobs as job_service
from services.ingest import Ingestor, Report
from workers.sweeper import Sweeper

tf = pytest.importorskip("tensorflow")

IMAGES, SIZE = 50, 96
THRESHOLD = 0.0  # an untrained detector scores ~0.01 everywhere: keep every peak, up to top-k per image


def _scenes() -> list[tuple[str, bytes]]:
    """Large scenes (1600x1200), so decoding makes the job last long enough to be killed in the middle."""
    out = []
    for i in range(IMAGES):
        objects = [("cat", 100 + 17 * i, 80 + 9 * i, 300, 220), ("dog", 900 + 5 * i, 600, 260 + 3 * i, 330)]
        out.append((f"p{i}.png", scene(1600, 1200, objects)))
    return out


def _detector_deployment(runtime, pid: int, uid: int, classes: dict[str, int]) -> tuple[int, bytes]:
    """A fresh (seeded) detector exported to ONNX and made the project's active detection deployment."""
    from models import export, networks

    model = networks.build(get_architecture("detector"), 2, SIZE, seed=0)
    path = runtime.settings.work_dir / "detector.onnx"
    export.export_onnx(model, path)
    onnx = path.read_bytes()
    with runtime.sessions() as session:
        ck = Checkpoint(project_id=pid, name="fresh detector", architecture="detector", status=CheckpointStatus.fresh,
                        classes=["cat", "dog"], config={"source": "architecture", "input_size": SIZE, "seed": 0},
                        created_by=uid)
        session.add(ck)
        session.flush()
        d = Deployment(project_id=pid, checkpoint_id=ck.id, task=DeploymentTask.detection,
                       status=DeploymentStatus.ready, active=True, model_key=runtime.blobs.put_bytes(onnx),
                       preprocessing=get_architecture("detector").spec(SIZE).to_dict(),
                       label_map=[{"class_id": classes[n], "name": n} for n in ("cat", "dog")], created_by=uid)
        session.add(d)
        session.commit()
        return d.id, onnx


def _job(runtime, job_id) -> Job:
    with runtime.sessions() as session:
        return session.get(Job, job_id)


def _per_image(runtime, deployment_id: int) -> Counter:
    with runtime.sessions() as session:
        return Counter(dict(session.execute(
            select(Annotation.image_id, func.count()).where(Annotation.deployment_id == deployment_id)
            .group_by(Annotation.image_id)).all()))


def test_a_killed_pre_annotation_is_sent_again_and_stores_each_proposal_once(isolated):
    iso, runtime, celery, start = isolated
    with runtime.sessions() as session:
        user = create_user(session, "annotator")
        project = Project(name="crash", description="", created_by=user.id, stats={})
        session.add(project)
        session.flush()
        classes = {n: LabelClass(project_id=project.id, name=n) for n in ("cat", "dog")}
        session.add_all(classes.values())
        session.commit()
        pid, uid, class_ids = project.id, user.id, {n: c.id for n, c in classes.items()}
    report = Report()
    Ingestor(runtime.sessions, runtime.blobs, iso, project_id=pid, job_id="setup", user_id=uid).store(_scenes(), report)
    image_ids = sorted(f["image_id"] for f in report.files)
    assert len(image_ids) == IMAGES
    deployment_id, onnx = _detector_deployment(runtime, pid, uid, class_ids)

    # what the model finds on each image, here in the test process on the same stored bytes
    predictor, spec = Predictor(onnx), get_architecture("detector").spec(SIZE)
    with runtime.sessions() as session:
        keys = dict(session.execute(select(Image.id, Image.blob_key).where(Image.project_id == pid)).all())
    expected = {}
    for image_id in image_ids:
        image = PILImage.open(io.BytesIO(runtime.blobs.read_bytes(keys[image_id]))).convert("RGB")
        expected[image_id] = len(decode(predictor.run(to_input(image, spec)[None]), threshold=THRESHOLD)[0])
    assert all(expected.values())

    stop = threading.Event()
    sweeper = Sweeper(iso, celery, echo=lambda _: None)
    loop = threading.Thread(target=sweeper.run_forever, args=(0.5, stop), daemon=True)
    loop.start()
    try:
        first = start("inference")
        with runtime.sessions() as session:
            job_id = job_service.submit(celery, runtime, session, "preannotate", project_id=pid, user_id=uid, params={
                "deployment_id": deployment_id, "selection": {"unannotated": True}, "threshold": THRESHOLD,
                "user_id": uid}).id
            session.commit()
        wait_until(lambda: _per_image(runtime, deployment_id), 120, "no proposal was stored", every=0.005)
        first.kill(signal.SIGKILL)
        before = _per_image(runtime, deployment_id)
        print(f"killed after {len(before)} of {IMAGES} images")
        assert 0 < len(before) < IMAGES, "the kill should land in the middle of the job"
        assert _job(runtime, job_id).status.value == "running"

        # the reaper's loop sees the dead heartbeat, finds no message held (early ack), and sends it again
        start("inference")
        job = wait_until(lambda: (j := _job(runtime, job_id)).status.terminal and j, 120,
                         "the pre-annotation was not run again to its end")
    finally:
        stop.set()
        loop.join(timeout=30)
        sweeper.close()
    assert job.status.value == "succeeded", job.error
    assert job.attempts == 2 and job.sends == 2

    stored = _per_image(runtime, deployment_id)
    assert stored == {i: n for i, n in expected.items()}  # every image once, with all its detections, no duplicates
    for image_id, n in before.items():
        assert stored[image_id] == n  # the killed run's images were skipped, not stored again
    with runtime.sessions() as session:
        rows = session.execute(select(Annotation.image_id, Annotation.class_id, Annotation.x, Annotation.y,
                                      Annotation.w, Annotation.h, Annotation.source, Annotation.status)
                               .where(Annotation.deployment_id == deployment_id)).all()
    assert len(set(rows)) == len(rows) == sum(expected.values())
    assert {(r.source, r.status) for r in rows} == {(AnnotationSource.model, AnnotationStatus.proposed)}

    result = job.result
    assert result["images"] == IMAGES and result["skipped"] == 0 and result["processed"] == IMAGES
    assert result["proposals"] == sum(expected.values()) and result["images_with_proposals"] == IMAGES
    assert result["resumed_after"] == len(before)  # images the killed attempt had finished
