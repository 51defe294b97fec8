"""Evaluations: COCO mAP@[.5:.95] and mAP@.5 (pycocotools' COCOeval, overall and per class) of a detector —
a checkpoint's Keras weights or a deployment's ONNX model — on a selection of the project's labelled images,
kept on the checkpoint so that the checkpoints of the tree compare on the same held-out images.

The job (`evaluation`, deployment queue: a checkpoint needs TensorFlow, which the inference pool never
imports) feeds each whole image stretched to the model's square input, decodes with `models.detection` and
scores with `models.cocoeval`, exactly what the training job reports per epoch. Ground truth is every
accepted box of the model's classes on the selected images, in image pixels.
"""

from __future__ import annotations

import shutil

import numpy as np
from sqlalchemy import select, update

from models.architectures import get_architecture
from models.cocoeval import ImageTruth, evaluate
from models.predictor import spec_from, to_input
from services import jobs as job_service
from services.checkpoints import preprocessing
from services.deployments import DeployError, class_map
from services.errors import CommandError
from services.inference import decode as decode_image
from services.outbox import send_after_commit
from store.schema import (
    Annotation, AnnotationStatus, Checkpoint, Deployment, DeploymentStatus, DeploymentTask, Evaluation,
    EvaluationStatus, Image, LabelMap,
)
from store.schema.base import utcnow
from store.scratch import fresh_scratch
from store.selection import SUBSETS, selected_image_ids

BATCH = 16


def request(celery, runtime, session, project_id: int, data: dict, user_id: int | None) -> Evaluation:
    """Start an evaluation of `checkpoint_id` or `deployment_id` (exactly one) on `label_map_id` (+ `subset`) or
    `image_ids` (exactly one)."""
    if ("checkpoint_id" in data) == ("deployment_id" in data):
        raise CommandError(400, "name exactly one of checkpoint_id or deployment_id",
                           fields={"checkpoint_id": ["checkpoint_id or deployment_id"]})
    deployment = None
    if "deployment_id" in data:
        deployment = session.get(Deployment, data["deployment_id"])
        if deployment is None or deployment.project_id != project_id:
            raise CommandError(404, f"deployment {data['deployment_id']} not found in project {project_id}",
                               fields={"deployment_id": [f"not in project {project_id}"]})
        if deployment.task is not DeploymentTask.detection or deployment.status is not DeploymentStatus.ready:
            raise CommandError(409, f"deployment {deployment.id} is a {deployment.status.value} "
                                    f"{deployment.task.value} deployment; evaluate a ready detection one",
                               fields={"deployment_id": ["a ready detection deployment"]})
        checkpoint = session.get(Checkpoint, deployment.checkpoint_id)
    else:
        checkpoint = session.get(Checkpoint, data["checkpoint_id"])
        if checkpoint is None or checkpoint.project_id != project_id:
            raise CommandError(404, f"checkpoint {data['checkpoint_id']} not found in project {project_id}",
                               fields={"checkpoint_id": [f"not in project {project_id}"]})
        if get_architecture(checkpoint.architecture).task != "detection":
            raise CommandError(400, f"checkpoint {checkpoint.id} is a {checkpoint.architecture}; COCO mAP scores "
                                    "detectors", fields={"checkpoint_id": ["a detector checkpoint"]})
        if checkpoint.status.value == "training":
            raise CommandError(409, f"checkpoint {checkpoint.id} is training; evaluate it once its weights are final",
                               fields={"checkpoint_id": ["training"]})
        try:
            class_map(session, checkpoint)
        except DeployError as exc:
            raise CommandError(409, str(exc), fields={"checkpoint_id": [str(exc)]}) from None
    evaluation = Evaluation(project_id=project_id, checkpoint_id=checkpoint.id,
                            deployment_id=deployment.id if deployment else None, status=EvaluationStatus.running,
                            selection=_selection(session, project_id, data), metrics={}, created_by=user_id)
    session.add(evaluation)
    session.flush()
    job = job_service.create_job(session, "evaluation", params={"evaluation_id": evaluation.id},
                                 project_id=project_id, user_id=user_id)
    evaluation.job_id = job.id
    send_after_commit(celery, runtime, session, [job])
    session.flush()
    return evaluation


def _selection(session, project_id: int, data: dict) -> dict:
    if ("label_map_id" in data) == ("image_ids" in data):
        raise CommandError(400, "select the images by label_map_id (and subset) or by image_ids, one of them",
                           fields={"label_map_id": ["label_map_id or image_ids"]})
    if "image_ids" in data:
        ids = sorted(set(data["image_ids"]))
        found = set(session.scalars(select(Image.id).where(Image.id.in_(ids), Image.project_id == project_id)))
        missing = [i for i in ids if i not in found]
        if missing:
            raise CommandError(404, f"images {missing[:20]} not found in project {project_id}",
                               fields={"image_ids": [f"not in project {project_id}: {missing[:20]}"]})
        return {"image_ids": ids}
    label_map = session.get(LabelMap, data["label_map_id"])
    if label_map is None or label_map.project_id != project_id:
        raise CommandError(404, f"label map {data['label_map_id']} not found in project {project_id}",
                           fields={"label_map_id": [f"not in project {project_id}"]})
    subset = data.get("subset", "all")
    if subset not in SUBSETS:
        raise CommandError(400, f"subset {subset!r}: one of {SUBSETS}", fields={"subset": [f"one of {SUBSETS}"]})
    return {"label_map_id": label_map.id, "subset": subset}


# --- the job ---------------------------------------------------------------------------------------------


def run(ctx, evaluation_id: int) -> dict:
    rt = ctx.rt
    with rt.sessions() as session:
        ev = session.get(Evaluation, evaluation_id)
        if ev is None:
            raise RuntimeError(f"evaluation {evaluation_id} was deleted")
        if ev.status is EvaluationStatus.succeeded:
            return {"evaluation_id": ev.id, "metrics": ev.metrics}  # an earlier delivery finished it
        checkpoint = session.get(Checkpoint, ev.checkpoint_id)
        if ev.deployment_id is not None:
            deployment = session.get(Deployment, ev.deployment_id)
            classes, spec, source = list(deployment.label_map), spec_from(deployment.preprocessing), deployment.model_key
        else:
            classes, spec, source = class_map(session, checkpoint), spec_from(preprocessing(checkpoint)), None
        selection = dict(ev.selection)
        ids = (selection["image_ids"] if "image_ids" in selection else
               list(session.scalars(select(Image.id).where(Image.id.in_(
                   selected_image_ids(selection["label_map_id"], selection["subset"]))).order_by(Image.id))))
        images = session.execute(select(Image.id, Image.blob_key, Image.width, Image.height)
                                 .where(Image.id.in_(ids)).order_by(Image.id)).all()
        index = {c["class_id"]: k for k, c in enumerate(classes)}
        boxes: dict[int, list] = {}
        for a in session.execute(select(Annotation.image_id, Annotation.class_id, Annotation.x, Annotation.y,
                                        Annotation.w, Annotation.h)
                                 .where(Annotation.image_id.in_(ids), Annotation.status == AnnotationStatus.accepted,
                                        Annotation.class_id.in_(list(index))).order_by(Annotation.id)):
            boxes.setdefault(a.image_id, []).append(((a.x, a.y, a.w, a.h), index[a.class_id]))
        weights = checkpoint.weights_key
        recipe = (get_architecture(checkpoint.architecture), len(classes), int(checkpoint.config["input_size"]),
                  int(checkpoint.config.get("seed", 0)))
    names = [c["name"] for c in classes]
    ctx.progress(0, max(len(images), 1), f"evaluating on {len(images)} images", force=True)
    work = fresh_scratch(rt.settings.work_dir, f"evaluate-{evaluation_id}-", ctx.id)
    try:
        predict = _predictor(rt, source, weights, recipe, work)

        def batches():
            for start in range(0, len(images), BATCH):
                chunk = images[start:start + BATCH]
                inputs = np.stack([to_input(decode_image(rt.blobs.read_bytes(i.blob_key)), spec) for i in chunk])
                truths = [ImageTruth(i.width, i.height, [b for b, _ in boxes.get(i.id, [])],
                                     [k for _, k in boxes.get(i.id, [])]) for i in chunk]
                yield inputs, truths
                ctx.progress(start + len(chunk), len(images), f"{start + len(chunk)}/{len(images)} images")

        metrics = evaluate(predict, batches(), names)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with rt.sessions() as session:
        session.execute(update(Evaluation).where(Evaluation.id == evaluation_id,
                                                 Evaluation.status == EvaluationStatus.running)
                        .values(status=EvaluationStatus.succeeded, metrics=metrics, finished_at=utcnow()))
        session.commit()
    return {"evaluation_id": evaluation_id, "metrics": metrics}


def _predictor(rt, model_key: str | None, weights_key: str | None, recipe, work):
    """batch → {"scores", "boxes"}: onnxruntime for a deployment, Keras (TensorFlow) for a checkpoint."""
    if model_key is not None:
        from models.predictor import Predictor

        return Predictor(rt.blobs.read_bytes(model_key)).run
    from models import networks, training  # TensorFlow: the deployment pool has it

    if weights_key is None:
        model = networks.build(*recipe[:3], seed=recipe[3])
    else:
        rt.blobs.save_as(weights_key, work / "model.keras")
        model = training.load(str(work / "model.keras"), compile=False)
    return lambda batch: {k: np.asarray(v) for k, v in model.predict_on_batch(batch).items()}


def settle(runtime, session, job) -> None:
    """An evaluation whose job did not succeed says so (settle hook of `evaluation`)."""
    from store.schema import JobStatus

    if job.status is JobStatus.succeeded:
        return
    status = EvaluationStatus.cancelled if job.status is JobStatus.cancelled else EvaluationStatus.failed
    session.execute(update(Evaluation).where(Evaluation.job_id == job.id, Evaluation.status == EvaluationStatus.running)
                    .values(status=status, error=job.error or job.message, finished_at=utcnow()))
