"""A worker killed in the middle of an ingest: the job is redelivered, finishes, and every file ends up
stored once, reported once."""

from __future__ import annotations

import io
import signal
import time

import numpy as np
from PIL import Image as PILImage

from store.accounts import create_user
from store.schema import Image, Job, Project
from store.staging import Staging
from services import jobs as job_service

FILES = 160


def _noise_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _job(runtime, job_id) -> Job:
    with runtime.sessions() as session:
        return session.get(Job, job_id)


def test_killed_ingest_is_redelivered_and_stores_every_file_once(isolated):
    iso, runtime, celery, start = isolated
    with runtime.sessions() as session:
        user = create_user(session, "ingester")
        project = Project(name="crash", description="", created_by=user.id, stats={})
        session.add(project)
        session.commit()
        pid, uid = project.id, user.id
    staging = Staging(iso.staging_dir)
    upload = staging.new_upload()
    files = [{"name": f"noise-{i}.png", "file": staging.save(upload, i, io.BytesIO(_noise_png(i)))[0]}
             for i in range(FILES)]

    first = start("augmentation")
    with runtime.sessions() as session:
        job_id = job_service.submit(celery, runtime, session, "ingest", project_id=pid, user_id=uid,
                                    params={"staging": upload, "files": files, "user_id": uid}).id
        session.commit()
    deadline = time.monotonic() + 60
    while (job := _job(runtime, job_id)).progress < 0.2:
        assert job.status.value in ("queued", "running") and time.monotonic() < deadline, job.status
        time.sleep(0.01)
    first.kill(signal.SIGKILL)
    with runtime.sessions() as session:
        stored_before = session.query(Image).filter_by(project_id=pid).count()
    assert 0 < stored_before < FILES, "the kill should land mid-ingest"

    start("augmentation", LOOPLINE_VISIBILITY_TIMEOUTS='{"augmentation": 1}')
    deadline = time.monotonic() + 120
    while (job := _job(runtime, job_id)).status.value not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the redelivered ingest did not finish"
        time.sleep(0.1)
    assert job.status.value == "succeeded", job.error
    assert job.attempts == 2
    report = job.result["files"]
    assert sorted(f["name"] for f in report) == sorted(f["name"] for f in files)  # each file reported once
    assert {f["outcome"] for f in report} == {"accepted"}
    with runtime.sessions() as session:
        stored = session.query(Image).filter_by(project_id=pid).all()
    assert len(stored) == FILES and len({i.sha256 for i in stored}) == FILES
    assert {i.id for i in stored} == {f["image_id"] for f in report}
    assert not staging.exists(upload)
