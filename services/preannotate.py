"""Pre-annotation: the active detector over a selection of a project's images, each detection above a
threshold stored as a proposed model box (source model, the deployment, its score) for review.

A job on the inference queue (`preannotate`), where the warm onnxruntime sessions are. It is idempotent and
SIGKILL-safe by construction: each batch of images is one transaction that locks and bumps the images'
revisions (row locks that serialise writers of those images) and then inserts the proposals of each image
that holds no box of that deployment yet, so a redelivered or repeated job skips what an earlier run stored and never stores a
proposal twice. Its message never expires (`JobKind.batch`): after a killed worker the reaper and the
dispatcher send it again, however long that took. The first attempt writes what the selection held before
(images with this deployment's proposals, and their count) into the job's details before it stores anything,
and the result is counted in the catalog against that, so a resumed job reports the whole job, not its last
attempt. A project setting starts one after every finished ingest.
"""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy import exists, func, insert, or_, select, update

from models.detection import decode, to_pixels
from models.predictor import to_input
from services import jobs as job_service
from services.deployments import active_deployment
from services.errors import CommandError
from services.outbox import send_after_commit
from store.schema import Annotation, AnnotationSource, AnnotationStatus, Image, Job, Project
from store.schema.base import utcnow

BATCH = 8
AFTER_INGEST = uuid.UUID("5b0e4a52-4d0c-4b8e-9a55-2f1f3c6f0d11")  # names the job an ingest starts, once


def check_threshold(threshold) -> float:
    if threshold is None or not 0.0 <= float(threshold) <= 1.0:
        raise CommandError(400, f"threshold {threshold} is outside [0, 1]", fields={"threshold": ["within [0, 1]"]})
    return float(threshold)


def selection_of(session, project_id: int, data: dict) -> dict:
    """The selection a request names — `image_ids`, `ingest_job_id` or `unannotated` (exactly one) — checked
    against the project: images or an ingest job of another project are not found (404)."""
    named = [k for k in ("image_ids", "ingest_job_id", "unannotated") if data.get(k) not in (None, False)]
    if len(named) != 1:
        raise CommandError(400, "name exactly one selection: image_ids, ingest_job_id or unannotated: true",
                           fields={"image_ids": ["one of image_ids, ingest_job_id, unannotated"]})
    if named == ["image_ids"]:
        ids = sorted(set(data["image_ids"]))
        found = set(session.scalars(select(Image.id).where(Image.id.in_(ids), Image.project_id == project_id)))
        missing = [i for i in ids if i not in found]
        if missing:
            raise CommandError(404, f"images {missing[:20]} not found in project {project_id}",
                               fields={"image_ids": [f"not in project {project_id}: {missing[:20]}"]})
        return {"image_ids": ids}
    if named == ["ingest_job_id"]:
        job = session.get(Job, data["ingest_job_id"])
        if job is None or job.project_id != project_id or job.kind != "ingest":
            raise CommandError(404, f"ingest job {data['ingest_job_id']} not found in project {project_id}",
                               fields={"ingest_job_id": [f"no ingest job of project {project_id}"]})
        return {"ingest_job_id": job.id}
    return {"unannotated": True}


def request(celery, runtime, session, project: Project, data: dict, user_id: int | None) -> Job:
    """Start a pre-annotation job with the project's active detector (409 without one)."""
    threshold = check_threshold(data.get("threshold", project.pre_annotate_threshold))
    selection = selection_of(session, project.id, data)
    deployment = active_deployment(session, project.id, "detection")
    if deployment is None:
        raise CommandError(409, f"project {project.id} has no active detection deployment to pre-annotate with: "
                                f"deploy a trained detector (POST /api/projects/{project.id}/deployments)",
                           code="no_deployment")
    job = job_service.create_job(session, "preannotate", project_id=project.id, user_id=user_id, params={
        "deployment_id": deployment.id, "selection": selection, "threshold": threshold, "user_id": user_id})
    send_after_commit(celery, runtime, session, [job])
    session.flush()
    return job


def update_settings(session, project: Project, data: dict) -> Project:
    if "threshold" in data:
        project.pre_annotate_threshold = check_threshold(data["threshold"])
    if "after_ingest" in data:
        project.pre_annotate_after_ingest = bool(data["after_ingest"])
    session.flush()
    return project


def after_ingest(celery, runtime, session, project_id: int, ingest_job_id: str, user_id: int | None) -> Job | None:
    """The job a finished ingest starts when its project asks for it and a detector is active; named after the
    ingest job, so a redelivered ingest does not start a second one."""
    project = session.get(Project, project_id)
    if project is None or not project.pre_annotate_after_ingest:
        return None
    deployment = active_deployment(session, project_id, "detection")
    job_id = str(uuid.uuid5(AFTER_INGEST, ingest_job_id))
    if deployment is None or session.get(Job, job_id) is not None:
        return None
    job = job_service.create_job(session, "preannotate", project_id=project_id, user_id=user_id, job_id=job_id, params={
        "deployment_id": deployment.id, "selection": {"ingest_job_id": ingest_job_id},
        "threshold": project.pre_annotate_threshold, "user_id": user_id})
    send_after_commit(celery, runtime, session, [job])
    session.flush()
    return job


# --- the job ---------------------------------------------------------------------------------------------


def _image_ids(session, project_id: int, selection: dict, deployment_id: int) -> list[int]:
    q = select(Image.id).where(Image.project_id == project_id)
    if "image_ids" in selection:
        q = q.where(Image.id.in_(selection["image_ids"]))
    elif "ingest_job_id" in selection:
        q = q.where(Image.job_id == selection["ingest_job_id"])
    else:  # no box but this deployment's own proposals: a resumed job still counts the images it has done
        q = q.where(~exists().where(Annotation.image_id == Image.id, or_(Annotation.deployment_id.is_(None),
                                                                         Annotation.deployment_id != deployment_id)))
    return list(session.scalars(q.order_by(Image.id)))


def _stored(session, deployment_id: int, ids: list[int]) -> tuple[set[int], int]:
    """The images among `ids` holding proposals of `deployment_id`, and how many proposals those are."""
    rows = session.execute(select(Annotation.image_id, func.count()).where(
        Annotation.deployment_id == deployment_id, Annotation.image_id.in_(ids)).group_by(Annotation.image_id)).all()
    return {r[0] for r in rows}, sum(r[1] for r in rows)


def run(ctx, models, images, deployment_id: int, selection: dict, threshold: float, user_id: int | None = None) -> dict:
    """Detect on every selected image without proposals of `deployment_id`, storing those above `threshold`."""
    rt = ctx.rt
    loaded = models.get(deployment_id)
    with rt.sessions() as session:
        ids = _image_ids(session, ctx.project_id, selection, deployment_id)
        done, _ = _stored(session, deployment_id, ids)
        rows = {i.id: (i.blob_key, i.width, i.height) for i in session.execute(
            select(Image.id, Image.blob_key, Image.width, Image.height).where(Image.id.in_(ids)))}
    # the selection before this job stored anything: written by the first attempt, read by a redelivered one
    before = ctx.details.get("before")
    if before is None:
        with rt.sessions() as session:
            before = {"skipped": len(done), "proposals": _stored(session, deployment_id, ids)[1]}
    todo = [i for i in ids if i not in done]
    earlier = len(done) - before["skipped"]  # images an earlier attempt of this job finished
    total = max(len(ids) - before["skipped"], 1)
    ctx.progress(earlier, total, f"{len(todo)} images to pre-annotate, {len(done)} already have proposals"
                 + (f" ({earlier} from an earlier attempt)" if earlier else ""), force=True, before=before)
    processed = proposals = 0
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        inputs = np.stack([to_input(images.get(rows[i][0]), loaded.spec) for i in chunk])
        found = decode(loaded.predictor.run(inputs), threshold=threshold)
        boxes = {image_id: [_proposal(d, rows[image_id][1], rows[image_id][2], loaded.label_map, deployment_id,
                                      user_id) for d in detections]
                 for image_id, detections in zip(chunk, found, strict=True)}
        proposals += _store(rt, ctx.project_id, deployment_id, boxes)
        processed += len(chunk)
        ctx.progress(earlier + processed, total, f"{earlier + processed}/{total} images · {proposals} proposals "
                     "stored by this attempt", proposals=proposals)
    with rt.sessions() as session:  # the whole job's figures, from the catalog: every attempt's stores count
        holding, stored = _stored(session, deployment_id, ids)
    return {"deployment_id": deployment_id, "threshold": threshold, "images": len(ids), "skipped": before["skipped"],
            "processed": len(ids) - before["skipped"], "proposals": stored - before["proposals"],
            "images_with_proposals": len(holding) - before["skipped"], "resumed_after": earlier}


def _proposal(d, width: int, height: int, label_map: list[dict], deployment_id: int, user_id) -> dict:
    x, y, w, h = to_pixels(d.box, (0.0, 0.0, float(width), float(height)))
    w, h = max(min(w, width - x), 1.0), max(min(h, height - y), 1.0)
    now = utcnow()
    return {"class_id": label_map[d.class_index]["class_id"], "x": x, "y": y, "w": w, "h": h, "score": d.score,
            "deployment_id": deployment_id, "source": AnnotationSource.model, "status": AnnotationStatus.proposed,
            "revision": 1, "created_by": user_id, "created_at": now, "updated_at": now}


def _store(rt, project_id: int, deployment_id: int, boxes: dict[int, list[dict]]) -> int:
    """A batch's proposals in one transaction of a few statements (not a few per image): lock the batch's
    image rows in id order (PostgreSQL; SQLite has one writer), bump their revisions, and insert the proposals
    of those that hold no box of that deployment yet — the others were stored by an earlier delivery, and
    their bump is undone in the same transaction."""
    wanted = sorted(i for i, rows in boxes.items() if rows)
    if not wanted:
        return 0
    with rt.sessions() as session:
        locked = list(session.scalars(select(Image.id).where(Image.id.in_(wanted), Image.project_id == project_id)
                                      .order_by(Image.id).with_for_update()))  # none: deleted meanwhile
        if not locked:
            return 0
        session.execute(update(Image).where(Image.id.in_(locked))
                        .values(annotation_revision=Image.annotation_revision + 1))
        there = set(session.scalars(select(Annotation.image_id).distinct().where(
            Annotation.image_id.in_(locked), Annotation.deployment_id == deployment_id)))
        if there:
            session.execute(update(Image).where(Image.id.in_(there))
                            .values(annotation_revision=Image.annotation_revision - 1))
        rows = [{"image_id": i, **b} for i in locked if i not in there for b in boxes[i]]
        if rows:
            session.execute(insert(Annotation), rows)
        session.commit()
    return len(rows)
