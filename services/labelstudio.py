"""Label Studio as a client of a project: its link (URL, API key, project), its task images, its annotation
events and its "Start training", in the caller's transaction (the request commits; jobs are sent after).

Files uploaded to Label Studio are tasks with relative URLs (`/data/upload/<p>/<name>`) that only its API key
reads. The link keeps the URL and key Label Studio sends in `/setup` (or that a manager sets), and a task image
on that origin is fetched with `Authorization: Token <key>` under the ingest SSRF rules plus one explicit
allowance: that origin may resolve to a private or loopback address (Label Studio usually runs next to
loopline). The key goes only to that origin — a redirect elsewhere drops it — and never into an answer, a
log line, a Celery message or Redis: these images are fetched by the API process and handed on as bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urljoin

from sqlalchemy import select

from handlers.registry import ConfigError, UnknownHandler, default_registry
from services import jobs as job_service
from services.annotations import check_box, claim_revision
from services.errors import CommandError
from services.fetch import FetchPolicy, FetchRefused, fetch, origin_of
from services.outbox import send_after_commit
from store.schema import (
    Annotation, AnnotationSource, AnnotationStatus, Checkpoint, Image, Job, LabelClass, LabelMap, LabelStudioImport,
    LabelStudioLink, Project,
)

log = logging.getLogger("loopline.labelstudio")
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
TRAINING_EVENT = "START_TRAINING"
RECIPE_TRAINING = uuid.UUID("6f0c2d1e-4b7a-4f45-9d1e-3c5a8b2f7e10")  # namespace of the training job a recipe job starts


# --- the link ------------------------------------------------------------------------------------------------
def get_link(session, project_id: int) -> LabelStudioLink | None:
    return session.get(LabelStudioLink, project_id)


def _link_for_update(session, project_id: int) -> LabelStudioLink:
    link = session.get(LabelStudioLink, project_id, with_for_update=True)
    if link is None:
        if session.get(Project, project_id) is None:
            raise CommandError(404, f"project {project_id} not found")
        link = LabelStudioLink(project_id=project_id)
        session.add(link)
    return link


def check_origin(url: str, field: str = "url") -> str:
    """An http(s) origin without credentials, path or query: where Label Studio answers."""
    origin = origin_of(url) if isinstance(url, str) else None
    if origin is None or "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise CommandError(400, f"{field} must be Label Studio's http(s) address, e.g. http://localhost:8080",
                           fields={field: ["not an http(s) URL without credentials"]})
    return url.rstrip("/")


def ls_project_id(value) -> int | None:
    """Label Studio's project id from `/setup`'s `project` ("7.1700000000": id and creation time)."""
    head = str(value).split(".", 1)[0] if value is not None else ""
    return int(head) if head.isdigit() and len(head) < 18 else None


def connect(session, project_id: int, changes: dict) -> LabelStudioLink:
    """Set any of `url`, `api_key`, `ls_project` (None clears one)."""
    link = _link_for_update(session, project_id)
    if "url" in changes:
        link.url = None if changes["url"] is None else check_origin(changes["url"])
    if "api_key" in changes:
        link.api_key = changes["api_key"] or None
    if "ls_project" in changes:
        link.ls_project = changes["ls_project"]
    session.flush()
    return link


def setup_seen(session, project_id: int, body: dict) -> None:
    """Keep what Label Studio's `/setup` says about itself: its address, the key and its project."""
    changes = {}
    if isinstance(body.get("hostname"), str) and body["hostname"]:
        try:
            changes["url"] = check_origin(body["hostname"], "hostname")
        except CommandError:
            log.warning("project %s: Label Studio sent a hostname that is not an http(s) origin; kept the old one",
                        project_id)
    if isinstance(body.get("access_token"), str) and body["access_token"]:
        changes["api_key"] = body["access_token"]
    if (ls := ls_project_id(body.get("project"))) is not None:
        changes["ls_project"] = ls
    if changes:
        connect(session, project_id, changes)


# --- task images ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskImage:
    """How a task's image is read: `data` (fetched here), or `url` for the pipeline's download stage."""
    data: bytes | None = None
    url: str | None = None


def task_image(link: LabelStudioLink | None, url: str, policy: FetchPolicy) -> TaskImage:
    """A relative URL or one on the linked Label Studio's origin is fetched here with its key; any other URL is
    left to the pipeline. FetchRefused says why one cannot be read."""
    if url.startswith("/") and not url.startswith("//"):
        if link is None or not link.url:
            raise FetchRefused("no_label_studio_url", f"{url[:100]} is relative and this project knows no Label "
                                                      "Studio URL: connect the model again in Label Studio (it "
                                                      "sends its hostname in /setup) or PUT …/label-studio/connection")
        url = urljoin(link.url + "/", url.lstrip("/"))
    if link is None or not link.url or origin_of(url) != origin_of(link.url):
        return TaskImage(url=url)
    if not link.api_key:
        raise FetchRefused("no_label_studio_key", "this project has no Label Studio API key to read its files: "
                                                  "connect the model again or PUT …/label-studio/connection")
    allowed = FetchPolicy(max_bytes=policy.max_bytes, timeout=policy.timeout, max_redirects=policy.max_redirects,
                          allow_networks=policy.allow_networks, allow_origins=(link.url,), user_agent=policy.user_agent)
    return TaskImage(data=fetch(url, allowed, credentials=(link.url, {"Authorization": f"Token {link.api_key}"})).data)


# --- annotation events ---------------------------------------------------------------------------------------
def _image_field(payload: dict, data: dict) -> str | None:
    config = payload.get("project", {}).get("label_config") if isinstance(payload.get("project"), dict) else None
    if isinstance(config, str):
        try:
            node = ET.fromstring(config).find(".//Image")
        except ET.ParseError:
            node = None
        if node is not None and (node.get("value") or "").lstrip("$") in data:
            return node.get("value").lstrip("$")
    return next((k for k, v in data.items() if isinstance(v, str) and v), None)


def check_event_project(link: LabelStudioLink | None, payload: dict, project_id: int) -> None:
    ls = payload.get("project")
    ls = ls.get("id") if isinstance(ls, dict) else ls
    if link is not None and link.ls_project is not None and ls is not None and ls != link.ls_project:
        raise CommandError(400, f"the event is from Label Studio project {ls}; loopline project {project_id} is "
                                f"connected to Label Studio project {link.ls_project}",
                           fields={"project.id": [f"not {link.ls_project}"]})


def _boxes(results: list, image: Image, classes: dict[str, int]) -> list[dict]:
    boxes = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or r.get("type") != "rectanglelabels":
            continue  # other controls (choices, text) are not boxes
        v = r.get("value")
        where = f"annotation.result.{i}"
        nums = isinstance(v, dict) and all(isinstance(v.get(k), (int, float)) and not isinstance(v.get(k), bool)
                                           for k in ("x", "y", "width", "height"))
        labels = v.get("rectanglelabels") if isinstance(v, dict) else None
        if not nums or not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
            raise CommandError(400, f"{where}: a rectangle needs x, y, width, height (percent) and one label",
                               fields={where: ["not a rectanglelabels result"]})
        if v.get("rotation") not in (None, 0, 0.0):
            raise CommandError(400, f"{where}: rotated rectangles cannot be loopline boxes",
                               fields={f"{where}.value.rotation": ["must be 0"]})
        if labels[0] not in classes:
            raise CommandError(400, f"{where}: class {labels[0]!r} is not in this project (classes: "
                                    f"{', '.join(sorted(classes))})", fields={f"{where}.value.rectanglelabels": [
                                        "unknown class"]})
        box = {"x": v["x"] * image.width / 100, "y": v["y"] * image.height / 100,
               "w": v["width"] * image.width / 100, "h": v["height"] * image.height / 100}
        if box["w"] <= 0 or box["h"] <= 0 or box["x"] < 0 or box["y"] < 0:
            raise CommandError(400, f"{where}: the rectangle has no area or leaves the image",
                               fields={where: ["empty or outside"]})
        boxes.append({**check_box(image, box, f"{where}."), "class_id": classes[labels[0]]})
    return boxes


OWN_IMAGE = re.compile(r"/api/projects/(\d+)/images/(\d+)/file$")


def own_image(session, project_id: int, url: str) -> tuple[bool, Image | None]:
    """Whether the URL names an image of this loopline project (`/api/projects/<p>/images/<i>/file`), and it."""
    own = OWN_IMAGE.search(url.split("?")[0])
    if not own or int(own.group(1)) != project_id:
        return False, None
    if int(own.group(2)) >= 2**63:
        return True, None
    return True, session.scalar(select(Image).where(Image.id == int(own.group(2)), Image.project_id == project_id))


def _find_image(session, project_id: int, link, url: str, policy: FetchPolicy) -> Image:
    mine, found = own_image(session, project_id, url)
    if not mine:
        try:
            got = task_image(link, url, policy)
            data = got.data if got.data is not None else fetch(got.url, policy).data
        except FetchRefused as exc:
            raise CommandError(422, f"the task's image cannot be read: {exc}", code=f"fetch_{exc.reason}") from None
        found = session.scalar(select(Image).where(Image.project_id == project_id,
                                                   Image.sha256 == hashlib.sha256(data).hexdigest()))
    if found is None:
        raise CommandError(404, f"the task's image ({url[:100]}) is not in loopline project {project_id}: upload the "
                                "same file to loopline, or give Label Studio loopline's image URLs",
                           code="image_not_found")
    return found


def import_annotation(session, project_id: int, payload: dict, user_id: int | None, policy: FetchPolicy) -> dict:
    """Label Studio's annotation as accepted human boxes of the matching image. The same annotation again
    changes nothing; a changed one replaces the boxes it made before, moving the image's revision once."""
    annotation, task = payload.get("annotation"), payload.get("task")
    if not isinstance(annotation, dict) or not isinstance(task, dict):
        raise CommandError(400, "an annotation event carries `annotation` and `task` objects",
                           fields={"annotation": ["required object"], "task": ["required object"]})
    ann_id, task_id, results, data = annotation.get("id"), task.get("id"), annotation.get("result"), task.get("data")
    bad = {k: ["required integer"] for k, v in (("annotation.id", ann_id), ("task.id", task_id))
           if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**63}
    if not isinstance(results, list):
        bad["annotation.result"] = ["required list"]
    if not isinstance(data, dict):
        bad["task.data"] = ["required object"]
    if bad:
        raise CommandError(400, "malformed annotation event: " + ", ".join(bad), fields=bad)
    field = _image_field(payload, data)
    if field is None:
        raise CommandError(400, "the task's data names no image URL", fields={"task.data": ["no image URL"]})
    link = get_link(session, project_id)
    image = _find_image(session, project_id, link, data[field], policy)
    classes = dict(session.execute(select(LabelClass.name, LabelClass.id)
                                   .where(LabelClass.project_id == project_id)).tuples().all())
    boxes = _boxes(results, image, classes)
    digest = hashlib.sha256(json.dumps([image.id, sorted(
        [b["class_id"], *(round(b[k], 3) for k in ("x", "y", "w", "h"))] for b in boxes)]).encode()).hexdigest()
    row = session.get(LabelStudioImport, (project_id, ann_id), with_for_update=True)
    if row is not None and row.digest == digest:
        return {"image_id": image.id, "box_ids": list(row.box_ids), "changed": False,
                "revision": image.annotation_revision}
    revision = claim_revision(session, image, image.annotation_revision)
    old = list(row.box_ids) if row is not None else []
    if old:
        for a in session.scalars(select(Annotation).where(Annotation.id.in_(old))):
            session.delete(a)
    made = [Annotation(image_id=image.id, created_by=user_id, source=AnnotationSource.human,
                       status=AnnotationStatus.accepted, **b) for b in boxes]
    session.add_all(made)
    session.flush()
    if row is None:
        row = LabelStudioImport(project_id=project_id, annotation=ann_id)
        session.add(row)
    row.task, row.image_id, row.digest, row.box_ids = task_id, image.id, digest, [a.id for a in made]
    session.flush()
    return {"image_id": image.id, "box_ids": row.box_ids, "changed": True, "revision": revision}


# --- training ------------------------------------------------------------------------------------------------
def set_recipe(session, project_id: int, recipe: dict) -> LabelStudioLink:
    """What "Start training" runs: a dataset definition, the checkpoint to fork and the training parameters."""
    checkpoint = session.get(Checkpoint, recipe["checkpoint_id"])
    if checkpoint is None or checkpoint.project_id != project_id:
        raise CommandError(400, f"checkpoint {recipe['checkpoint_id']} not found in project {project_id}",
                           fields={"checkpoint_id": ["not in this project"]})
    dataset = recipe["dataset"]
    label_map = session.get(LabelMap, dataset["label_map_id"])
    if label_map is None or label_map.project_id != project_id:
        raise CommandError(400, f"label map {dataset['label_map_id']} not found in project {project_id}",
                           fields={"dataset.label_map_id": ["not in this project"]})
    try:
        default_registry().get(dataset["handler"]).config(dataset["config"])
    except UnknownHandler as exc:
        raise CommandError(400, str(exc), fields={"dataset.handler": [f"available: {', '.join(exc.available)}"]}) \
            from None
    except ConfigError as exc:
        raise CommandError(400, "invalid config: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items()),
                           fields={f"dataset.config.{k}": [v] for k, v in exc.errors.items()}) from None
    link = _link_for_update(session, project_id)
    link.recipe = recipe
    session.flush()
    return link


def start_training(celery, runtime, session, project_id: int, user_id: int | None):
    """The recipe's job (sent once the caller commits): it builds the dataset, forks the checkpoint and trains."""
    link = get_link(session, project_id)
    if link is None or not link.recipe:
        raise CommandError(409, f"project {project_id} has no training recipe for Label Studio's Start training: "
                                f"PUT /api/projects/{project_id}/label-studio/training first", code="no_recipe")
    job = job_service.create_job(session, "labelstudio.train", project_id=project_id, user_id=user_id,
                                 params={"recipe": link.recipe, "user_id": user_id})
    send_after_commit(celery, runtime, session, [job])
    session.flush()
    return job


def run_recipe(ctx, celery, recipe: dict, user_id: int | None, poll_seconds: float = 0.5) -> dict:
    """The job: request the dataset (a new build on the current boxes), wait for it, fork the checkpoint and start
    its training job. Each step commits before the next, so a redelivered job reuses what is done."""
    from services import checkpoints as tree
    from services.datasets import define, request_dataset
    from store.schema import Dataset, DatasetStatus

    spec = recipe["dataset"]
    with ctx.rt.sessions() as session:
        label_map = session.get(LabelMap, spec["label_map_id"])
        if label_map is None:
            raise CommandError(409, f"label map {spec['label_map_id']} of the recipe is gone")
        definition = define(session, project_id=ctx.project_id, name=spec["name"],
                            handler=default_registry().get(spec["handler"]), config=spec["config"],
                            label_map=label_map, subset=spec.get("subset", "all"))
        if not definition.images:
            raise CommandError(409, f"label map {label_map.id} selects no images with accepted boxes yet")
        answer = request_dataset(celery, ctx.rt, session, definition, user_id)
        key = answer.dataset.key
        session.commit()
    ctx.progress(0, 2, f"dataset {key[:12]}…", force=True)
    while True:
        with ctx.rt.sessions() as session:
            dataset = session.scalar(select(Dataset).where(Dataset.key == key))
            status, error = dataset.status, dataset.error
        if status is DatasetStatus.ready:
            break
        if status is DatasetStatus.failed:
            raise CommandError(409, f"dataset {key[:12]}… failed: {error}")
        ctx.check_cancelled()
        time.sleep(poll_seconds)  # waits on another job (the build), never in a request
    train_id = str(uuid.uuid5(RECIPE_TRAINING, ctx.id))  # one training run per recipe job, however delivered
    with ctx.rt.sessions() as session:
        started = session.get(Job, train_id)
        if started is not None:  # a redelivery after the commit below: the fork and its run exist
            return {"dataset_key": key, "checkpoint_id": started.params["checkpoint_id"], "training_job_id": train_id}
        parent = session.get(Checkpoint, recipe["checkpoint_id"])
        if parent is None:
            raise CommandError(409, f"checkpoint {recipe['checkpoint_id']} of the recipe is gone")
        trainable = parent.status in tree.TRAINABLE and parent.job_id is None
        checkpoint = parent if trainable else tree.fork(session, parent, None, user_id)
        params = {"dataset_key": key, "epochs": recipe["epochs"], "batch_size": recipe.get("batch_size", 32),
                  "learning_rate": recipe.get("learning_rate", 1e-3), "early_stopping": None,
                  "reinit_head": recipe.get("reinit_head", False), "report_every_steps": 20, "seed": 0}
        job = tree.train(celery, ctx.rt, session, checkpoint, params, user_id, job_id=train_id)
        result = {"dataset_key": key, "checkpoint_id": checkpoint.id, "training_job_id": job.id}
        session.commit()
    return result
