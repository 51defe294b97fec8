"""The collector (services/collector.py) over the real catalog, Redis, blob store and workers: rows reference
blobs, nothing deletes one inline, and a pass deletes only what no row names — never a blob a concurrent
ingest of the same bytes is about to name."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid

from sqlalchemy import delete, event, select, update

from store.accounts import create_user
from store.schema import (
    Checkpoint, CheckpointStatus, Dataset, DatasetStatus, Deployment, DeploymentStatus, DeploymentTask, Image,
    Job, JobStatus, Project,
)
from store.scratch import fresh_scratch
from store.staging import Staging
from tests.conftest import unique
from tests.support import images as img
from tests.support.blobs import age, age_tree
from tests.support.ingest import image_ids, ingest, upload
from services import jobs as job_service
from services.checkpoints import start_training
from services.collector import collect, collect_blobs, collect_scratch, collect_staging, named_keys
from services.ingest import Ingestor, Report

TRIALS = 50


def _project(runtime, name: str = "collector") -> tuple[int, int]:
    with runtime.sessions() as session:
        user = create_user(session, unique(name))
        project = Project(name=unique(name), description="", created_by=user.id, stats={})
        session.add(project)
        session.commit()
        return project.id, user.id


def _ingest_here(runtime, settings, pid: int, uid: int, data: bytes) -> tuple[str, str]:
    """Store one image with the ingest's own code, in this process; its (blob key, thumbnail key)."""
    ingestor = Ingestor(runtime.sessions, runtime.blobs, settings, project_id=pid, job_id=str(uuid.uuid4()),
                        user_id=uid)
    entry = ingestor.store([("picture.png", data)], Report())[0]
    assert entry["outcome"] == "accepted", entry
    with runtime.sessions() as session:
        image = session.get(Image, entry["image_id"])
        return image.blob_key, image.thumb_key


def _grace(runtime) -> float:
    return runtime.settings.blob_grace_seconds


def test_deleting_an_image_while_its_bytes_are_ingested_elsewhere_never_leaves_a_row_without_its_file(
        alice, workers, runtime, sql):
    """50 trials, each deleting an image while an upload of the same bytes into another project is being
    ingested, with the collector running all along (the deleted image's files look old); then a full pass."""
    first, second, control = (alice.post("/api/projects", json={"name": unique(n)}).get_json()["id"]
                              for n in ("first", "second", "control"))
    pictures = [img.png(40, 30, seed=7000 + i) for i in range(TRIALS)]
    originals = image_ids(ingest(alice, first, {f"{i}.png": p for i, p in enumerate(pictures)}))
    kept = image_ids(ingest(alice, control, {"control.png": img.png(40, 30, seed=6999)}))["control.png"]
    old = sql("SELECT blob_key, thumb_key FROM images WHERE project_id IN (:a, :c)", a=first, c=control)
    age(runtime.blobs, *{k for row in old for k in row})
    control_keys = set(sql("SELECT blob_key, thumb_key FROM images WHERE id = :i", i=kept)[0])
    strays = [runtime.blobs.put_bytes(os.urandom(64)) for _ in range(5)]  # named by nothing
    age(runtime.blobs, *strays)

    collected: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_collecting():
        try:
            while not stop.is_set():
                collected.extend(collect_blobs(runtime, grace=_grace(runtime)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    collector = threading.Thread(target=keep_collecting)
    collector.start()
    jobs = []
    try:
        for i, picture in enumerate(pictures):
            def send(i=i, picture=picture):
                res = upload(alice, second, {f"{i}.png": picture})
                assert res.status_code == 202, res.get_json()
                jobs.append(res.get_json()["id"])

            def remove(i=i):
                assert alice.delete(f"/api/projects/{first}/images/{originals[f'{i}.png']}").status_code == 200

            for step in ((send, remove) if i % 2 else (remove, send)):
                step()
        finished = [alice.wait_job(j) for j in jobs]
    finally:
        stop.set()
        collector.join(60)
    assert not failures, failures
    assert all(j["status"] == "succeeded" and j["result"]["files"][0]["outcome"] == "accepted" for j in finished)
    collected += collect(runtime).blobs  # and a full pass after

    rows = sql("SELECT project_id, blob_key, thumb_key FROM images WHERE project_id IN (:a, :b, :c)",
               a=first, b=second, c=control)
    assert sorted(r[0] for r in rows) == [second] * TRIALS + [control]
    for _, *keys in rows:  # every row names a file, and the file holds the bytes its key says
        for key in keys:
            assert hashlib.sha256(runtime.blobs.read_bytes(key)).hexdigest() == key
    with runtime.sessions() as session:
        named = named_keys(session)
    assert set(strays) <= set(collected)  # the collector did run
    assert not control_keys & set(collected)  # an old blob a row names all along is never touched
    second_keys = {k for _, *keys in rows for k in keys}
    for key in collected:  # collected while nothing named it; named again only by an ingest that stored it anew
        assert key not in named or (key in second_keys and runtime.blobs.exists(key))


def test_a_pass_between_an_ingests_put_and_its_commit_leaves_the_blobs_it_reuses(isolated):
    """Deterministic: the pass runs at the worst moment (the reused blobs on disk, the row not committed)
    and counts every blob as old, so only the ingest's hold can save them."""
    iso, runtime, _, _ = isolated
    first, uid = _project(runtime, "first")
    second, _ = _project(runtime, "second")
    picture = img.png(40, 30, seed=21)
    keys = _ingest_here(runtime, iso, first, uid, picture)
    age(runtime.blobs, *keys)
    with runtime.sessions() as session:  # what the image delete does: the row only
        session.execute(delete(Image).where(Image.project_id == first))
        session.commit()
    during: list[list[str]] = []

    def collect_now(session):
        if not during:
            during.append(collect_blobs(runtime, grace=-3600))

    event.listen(runtime.sessions, "before_commit", collect_now)
    try:
        assert _ingest_here(runtime, iso, second, uid, picture) == keys
    finally:
        event.remove(runtime.sessions, "before_commit", collect_now)
    assert during == [[]]
    assert all(runtime.blobs.exists(k) for k in keys)


def test_an_old_unreferenced_blob_goes_a_young_one_and_an_old_referenced_one_stay(isolated):
    iso, runtime, _, _ = isolated
    pid, uid = _project(runtime)
    blob, thumb = _ingest_here(runtime, iso, pid, uid, img.png(40, 30, seed=11))
    old, young = runtime.blobs.put_bytes(b"nobody names me"), runtime.blobs.put_bytes(b"nor me, yet")
    age(runtime.blobs, old, blob, thumb)

    assert collect(runtime).blobs == [old]
    assert not runtime.blobs.exists(old)
    assert runtime.blobs.exists(young) and runtime.blobs.exists(blob) and runtime.blobs.exists(thumb)
    age(runtime.blobs, young)
    assert collect(runtime).blobs == [young]  # once it is old too


def test_every_column_that_names_a_blob_keeps_it(isolated):
    iso, runtime, _, _ = isolated
    pid, uid = _project(runtime)
    keys = {what: runtime.blobs.put_bytes(what.encode()) for what in (
        "dataset", "weights", "epoch", "best epoch", "onnx")}
    age(runtime.blobs, *keys.values())
    with runtime.sessions() as session:
        session.add(Dataset(key="d" * 64, project_id=pid, name="d", handler="detection", handler_version=1,
                            config={}, data_revision="r", status=DatasetStatus.ready, blob_key=keys["dataset"],
                            sha256=keys["dataset"], size_bytes=7, manifest={}))
        checkpoint = Checkpoint(project_id=pid, name="c", architecture="box_suggester",
                                status=CheckpointStatus.cancelled, weights_key=keys["weights"], classes=["a"],
                                config={"input_size": 64, "seed": 0},
                                state={"epochs_done": 2, "state_key": keys["epoch"], "best_key": keys["best epoch"]})
        session.add(checkpoint)
        session.flush()
        session.add(Deployment(project_id=pid, checkpoint_id=checkpoint.id, task=DeploymentTask.suggestion,
                               status=DeploymentStatus.ready, model_key=keys["onnx"]))
        session.commit()
        assert set(keys.values()) <= named_keys(session)
    assert collect(runtime).blobs == []
    assert all(runtime.blobs.exists(k) for k in keys.values())
    with runtime.sessions() as session:
        session.execute(delete(Deployment).where(Deployment.project_id == pid))
        session.execute(delete(Project).where(Project.id == pid))  # the other rows go with their project
        session.commit()
    assert sorted(collect(runtime).blobs) == sorted(keys.values())


def test_epoch_files_of_a_failed_run_go_once_no_checkpoint_names_them(isolated):
    iso, runtime, celery, _ = isolated
    pid, uid = _project(runtime)
    replaced, last, best = (runtime.blobs.put_bytes(f"epoch {n}".encode()) for n in (1, 2, 3))
    age(runtime.blobs, replaced, last, best)
    with runtime.sessions() as session:
        # what a run that failed after three epochs leaves: its state names the last and the best epoch
        # (epoch 1's file was replaced and is named by nothing)
        checkpoint = Checkpoint(project_id=pid, name="run", architecture="box_suggester",
                                status=CheckpointStatus.failed, weights_key=None, classes=["a"],
                                config={"input_size": 64, "seed": 0},
                                state={"epochs_done": 3, "state_key": last, "best_key": best})
        dataset = Dataset(key="e" * 64, project_id=pid, name="d", handler="suggest", handler_version=1, config={},
                          data_revision="r", status=DatasetStatus.ready, size_bytes=0,
                          manifest={"label_map": {"classes": ["a"]}})
        session.add_all([checkpoint, dataset])
        session.commit()
    assert collect(runtime).blobs == [replaced]
    assert runtime.blobs.exists(last) and runtime.blobs.exists(best)  # the failed run's state still names them

    with runtime.sessions() as session:  # trained again: the new run starts from an empty state
        checkpoint = session.get(Checkpoint, checkpoint.id)
        start_training(celery, runtime, session, checkpoint, session.get(Dataset, dataset.id), {}, uid)
        session.commit()
        job_id = checkpoint.job_id
    assert sorted(collect(runtime).blobs) == sorted([last, best])
    with runtime.sessions() as session:  # no worker runs it here
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.cancelled))
        session.commit()


def test_staging_of_a_job_that_ended_goes_a_live_jobs_and_a_young_unclaimed_one_stay(isolated):
    iso, runtime, _, _ = isolated
    pid, uid = _project(runtime)
    staging = Staging(iso.staging_dir)
    uploads = {}
    for what in ("failed", "queued", "unclaimed young", "unclaimed old"):
        uploads[what] = staging.new_upload()
        staging.save(uploads[what], 0, io.BytesIO(b"staged bytes"))
    with runtime.sessions() as session:
        jobs = {what: job_service.create_job(session, "ingest", project_id=pid, user_id=uid,
                                             params={"staging": uploads[what], "files": []})
                for what in ("failed", "queued")}
        session.commit()
        # the reaper failed it, and the process died before the end's own clean-up removed the folder
        session.execute(update(Job).where(Job.id == jobs["failed"].id).values(status=JobStatus.failed))
        session.commit()
    age_tree(staging.folder(uploads["unclaimed old"]))
    age_tree(staging.folder(uploads["queued"]))  # a queued job's files are kept however old

    removed = collect_staging(runtime, grace=_grace(runtime))
    assert sorted(removed) == sorted([uploads["failed"], uploads["unclaimed old"]])
    assert {what for what, u in uploads.items() if staging.exists(u)} == {"queued", "unclaimed young"}
    with runtime.sessions() as session:
        session.execute(update(Job).where(Job.id == jobs["queued"].id).values(status=JobStatus.cancelled))
        session.commit()
    assert collect(runtime).staging == [uploads["queued"]]


def test_scratch_folders_of_jobs_that_ended_or_left_the_catalog_go(isolated):
    iso, runtime, _, _ = isolated
    pid, uid = _project(runtime)
    with runtime.sessions() as session:
        running, failed = (job_service.create_job(session, "checkpoint.train", project_id=pid, user_id=uid,
                                                  params={}) for _ in range(2))
        session.commit()
        session.execute(update(Job).where(Job.id == running.id).values(status=JobStatus.running))
        session.execute(update(Job).where(Job.id == failed.id).values(status=JobStatus.failed))
        session.commit()
        running_id, failed_id = running.id, failed.id
    work = iso.work_dir
    live = fresh_scratch(work, "train-1-", running_id)
    ended = fresh_scratch(work, "train-2-", failed_id)
    gone = fresh_scratch(work, "deploy-3-", str(uuid.uuid4()))
    unnamed = fresh_scratch(work, "dataset-abc-")
    (ended / "dataset").mkdir()
    (ended / "dataset" / "train-00000.tfrecord").write_bytes(b"x" * 100)

    assert sorted(collect_scratch(runtime)) == sorted([ended.name, gone.name])
    assert live.is_dir() and unnamed.is_dir() and not ended.exists() and not gone.exists()
    with runtime.sessions() as session:
        assert session.scalar(select(Job.status).where(Job.id == running_id)) is JobStatus.running
