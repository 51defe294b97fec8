"""Label Studio's ML backend protocol (`/health`, `/setup`, `/predict`) over a project's active
deployment, so a team annotating in Label Studio gets loopline's boxes there.

Connect it in Label Studio (Settings → Model) with the URL `<loopline>/api/projects/<id>/label-studio`
and Basic auth: any user name, a loopline token as the password. `/predict` answers each task with a
`rectanglelabels` result from the active box suggester around the rectangle the annotator drew when
Label Studio sends one (interactive pre-annotation), with one rectangle per object the active detector
finds in the whole image otherwise (409 saying so when no detector is deployed), or with `choices` from
the active classifier when the labeling config has Choices and no RectangleLabels. Task images are
fetched with the ingest SSRF rules; images served by this loopline project are read from the store; files
uploaded to Label Studio (relative URLs) are read with the key `/setup` sent (`services/labelstudio.py`).

A task that cannot be predicted is answered without a `result` (and with `error`): Label Studio stores no
prediction for it and asks again later, and the reason goes to the log and
`loopline_label_studio_unpredicted_tasks_total`. `/webhook` imports annotation events as human boxes and
starts the project's training recipe on "Start training"; `/versions` lists the model versions.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

from flask import request
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select

from api.auth import current_user, require_role
from api.blueprint import Blueprint
from api.deployments import require_active
from api.errors import ApiError
from api.extensions import celery, db, runtime
from api.inputs import ID_MAX, Text
from api.metrics import UNPREDICTED, observe
from api.pipelines import run_chain
from api.schemas import Id, JobOut, Strict
from store.schema import Deployment, Role
from services import labelstudio as commands
from services.deployments import active_deployment
from services.fetch import FetchRefused
from services.ingest import fetch_policy
from services.pipelines import plan

log = logging.getLogger("loopline.labelstudio")

bp = Blueprint("labelstudio", __name__, url_prefix="/api/projects/<int:project_id>/label-studio",
               description="Label Studio ML backend protocol")
PIPELINE = {"suggestion": "suggest", "classification": "classify", "detection": "detect"}
DETECTOR_NEEDED = (" to find the objects of whole images: deploy a trained detector (the box suggester only refines "
                   "a rectangle drawn in Label Studio)")
CONFIG_CHARS = 1_000_000


class _LabelStudioIn(Schema):
    class Meta:
        unknown = EXCLUDE  # Label Studio sends more (project, hostname, access_token, ...) than is read here


class LabelStudioSetupIn(_LabelStudioIn):
    schema = Text(load_default="", validate=validate.Length(max=CONFIG_CHARS),
                  metadata={"description": "the labeling config (XML)"})


class LabelStudioPredictIn(_LabelStudioIn):
    tasks = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=1000),
                        metadata={"description": "Label Studio tasks; the image URL is in `data.<Image value>`"})
    label_config = Text(load_default="", validate=validate.Length(max=CONFIG_CHARS))
    params = fields.Dict(load_default=dict, metadata={"description": "`context.result` holds a drawn rectangle"})


class LabelStudioConnectionIn(Strict):
    url = Text(allow_none=True, validate=validate.Length(max=2048),
               metadata={"description": "Label Studio's address, e.g. http://localhost:8080 (null clears it)"})
    api_key = Text(allow_none=True, load_only=True, validate=validate.Length(max=512),
                   metadata={"description": "a Label Studio API key (Account & Settings); never answered"})
    ls_project = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=ID_MAX),
                                metadata={"description": "the Label Studio project whose events are accepted"})

    @validates_schema
    def _something(self, data, **_):
        if not data:
            raise ValidationError("send at least one of url, api_key, ls_project")


class LabelStudioConnection(Schema):
    url = fields.String(allow_none=True)
    ls_project = fields.Integer(allow_none=True)
    api_key_set = fields.Boolean(metadata={"description": "whether a key is kept (the key itself is never shown)"})


class RecipeDatasetIn(Strict):
    name = Text(required=True, validate=[validate.Length(min=1, max=128),
                                         validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                                         error="letters, digits, '.', '_' and '-' only")])
    handler = Text(required=True, validate=validate.Length(min=1, max=80),
                   metadata={"description": "name@version, e.g. detection@1 (GET /api/handlers)"})
    label_map_id = Id(required=True)
    subset = Text(load_default="all", validate=validate.OneOf(["all", "failed"]))
    config = fields.Dict(keys=Text(validate=validate.Length(max=80)), load_default=dict)


class TrainingRecipeIn(Strict):
    dataset = fields.Nested(RecipeDatasetIn, required=True, metadata={
        "description": "the dataset definition, built again on the boxes there are when training starts"})
    checkpoint_id = Id(required=True, metadata={"description": "trained from (forked when it is not fresh)"})
    epochs = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=10_000))
    batch_size = fields.Integer(strict=True, load_default=32, validate=validate.Range(min=1, max=4096))
    learning_rate = fields.Float(load_default=1e-3, allow_nan=False, metadata={"exclusiveMinimum": True},
                                 validate=validate.Range(min=0, max=10, min_inclusive=False))
    reinit_head = fields.Boolean(load_default=False)


class TrainingRecipe(Schema):
    recipe = fields.Dict(allow_none=True, metadata={"description": "what Start training runs; null: none yet"})


class _EventProject(_LabelStudioIn):
    id = fields.Integer(strict=True, validate=validate.Range(min=0, max=ID_MAX))
    label_config = Text(validate=validate.Length(max=CONFIG_CHARS))


class _EventTask(_LabelStudioIn):
    id = fields.Integer(strict=True, validate=validate.Range(min=0, max=ID_MAX))
    data = fields.Dict(keys=Text(validate=validate.Length(max=256)),
                       metadata={"description": "the task's data: the Image value names the image URL"})


class _EventValue(_LabelStudioIn):
    x, y, width, height, rotation = (fields.Float(allow_nan=False) for _ in range(5))
    rectanglelabels = fields.List(Text(validate=validate.Length(max=128)), validate=validate.Length(max=16))


class _EventResult(_LabelStudioIn):
    type = Text(validate=validate.Length(max=64))
    value = fields.Nested(_EventValue)


class _EventAnnotation(_LabelStudioIn):
    id = fields.Integer(strict=True, validate=validate.Range(min=0, max=ID_MAX))
    result = fields.List(fields.Nested(_EventResult), validate=validate.Length(max=10_000),
                         metadata={"description": "rectanglelabels results in percent of the image"})


class LabelStudioEventIn(_LabelStudioIn):
    project = fields.Nested(_EventProject, metadata={"description": "`id` is checked against the link"})
    task = fields.Nested(_EventTask)
    annotation = fields.Nested(_EventAnnotation)
    action = Text(required=True, validate=validate.Length(min=1, max=64),
                  metadata={"description": "ANNOTATION_CREATED, ANNOTATION_UPDATED and START_TRAINING are acted on; "
                                           "other actions are acknowledged and ignored"})


class LabelStudioEvent(Schema):
    action = fields.String()
    status = fields.String(metadata={"description": "imported, unchanged, started or ignored"})
    image_id = fields.Integer()
    box_ids = fields.List(fields.Integer())
    revision = fields.Integer()
    job = fields.Nested(JobOut)


class LabelStudioVersions(Schema):
    versions = fields.List(fields.String())
    model_version = fields.String(allow_none=True)


class LabelStudioHealth(Schema):
    status = fields.String()
    model_class = fields.String()
    active_deployments = fields.Dict(keys=fields.String(), values=fields.Integer(allow_none=True))


class LabelStudioSetup(Schema):
    model_version = fields.String()


class LabelStudioPredictions(Schema):
    results = fields.List(fields.Dict(), metadata={"description": "one per task, in Label Studio's format"})
    model_version = fields.String()


def _controls(label_config: str) -> dict:
    """The first RectangleLabels / Choices control of a labeling config: name, toName, image field."""
    try:
        root = ET.fromstring(label_config or "<View/>")
    except ET.ParseError as exc:
        raise ApiError(400, f"label_config is not XML: {exc}", fields={"label_config": [str(exc)]}) from None
    found = {}
    for tag in ("RectangleLabels", "Choices"):
        node = root.find(f".//{tag}")
        if node is not None:
            found[tag] = {"from_name": node.get("name"), "to_name": node.get("toName")}
    images = {n.get("name"): (n.get("value") or "").lstrip("$") for n in root.iter("Image")}
    if not found:
        raise ApiError(400, "label_config has neither RectangleLabels nor Choices for an Image",
                       fields={"label_config": ["no RectangleLabels or Choices"]})
    for control in found.values():
        control["field"] = images.get(control["to_name"], "image")
    return found


@bp.route("/health")
class Health(MethodView):
    @bp.response(200, LabelStudioHealth)
    def get(self, project_id):
        """`{"status": "UP"}` and the active deployments."""
        require_role(project_id)
        active = {t: getattr(active_deployment(db.session, project_id, t), "id", None)
                  for t in ("suggestion", "classification", "detection")}
        return {"status": "UP", "model_class": "loopline", "active_deployments": active}


@bp.route("/setup")
class Setup(MethodView):
    @bp.arguments(LabelStudioSetupIn, required=False)
    @bp.response(200, LabelStudioSetup)
    def post(self, body, project_id):
        """Label Studio connects: answers the model version (the active deployment)."""
        require_role(project_id, Role.annotator)
        commands.setup_seen(db.session, project_id, request.get_json(silent=True) or {})
        controls = _controls(body.get("schema", ""))
        task = "classification"
        if "RectangleLabels" in controls:  # whole images go to the detector, drawn rectangles to the suggester
            task = "detection" if active_deployment(db.session, project_id, "detection") else "suggestion"
        return {"model_version": f"loopline-deployment-{require_active(project_id, task, ' to predict with').id}"}


@bp.route("/predict")
class Predict(MethodView):
    @bp.arguments(LabelStudioPredictIn)
    @bp.response(200, LabelStudioPredictions)
    def post(self, body, project_id):
        """Predictions for Label Studio tasks, in its JSON format (`results`, one per task)."""
        require_role(project_id, Role.annotator)
        controls = _controls(body["label_config"])
        kind = "RectangleLabels" if "RectangleLabels" in controls else "Choices"
        control = controls[kind]
        context = body["params"].get("context")
        context = context.get("result") if isinstance(context, dict) else None
        items, raw, failed = _items(project_id, body["tasks"], control["field"], context)
        task = "classification"
        if kind == "RectangleLabels":  # a drawn rectangle: the suggester refines it; a whole image: the detector
            task = "suggestion" if context_region(context) is not None else "detection"
        deployment = require_active(project_id, task, DETECTOR_NEEDED if task == "detection" else " to predict with")
        version = f"loopline-deployment-{deployment.id}"
        live = [i for i in range(len(items)) if i not in failed]
        outs: dict[int, dict] = dict(failed)
        if live:
            stages = plan(PIPELINE[task], [], ["image" if i in raw else "url" for i in live]).stages
            answer = run_chain(stages, [items[i] for i in live], {n: raw[i] for n, i in enumerate(live) if i in raw},
                               deployment.id)
            observe("label-studio", deployment.id, answer.get("timings"))
            outs.update(zip(live, answer["items"]))
        results = []
        for i, t in enumerate(body["tasks"]):
            out = outs[i]
            if "error" in out:
                _unpredicted(project_id, t, out["error"])
            results.append(_result(out, control, kind, version))
        return {"results": results, "model_version": version}


def _unpredicted(project_id: int, task: dict, error: dict) -> None:
    reason = str(error.get("reason", "error"))[:40]
    UNPREDICTED.labels(reason).inc()
    log.warning("project %s: Label Studio task %s not predicted (%s): %s", project_id, task.get("id"), reason,
                error.get("message"))


def context_region(context) -> dict | None:
    return next(({k: float(r["value"][k]) for k in _PCT} for r in (context if isinstance(context, list) else [])
                 if isinstance(r, dict) and isinstance(r.get("value"), dict) and _is_rectangle(r["value"])), None)


def _items(project_id: int, tasks: list, field: str, context: list):
    """Pipeline items, the bytes read here (own images, Label Studio's files) and the tasks that failed already."""
    region = context_region(context)
    link = commands.get_link(db.session, project_id)
    policy = fetch_policy(runtime().settings)
    items, raw, failed = [], {}, {}
    for i, t in enumerate(tasks):
        data = t.get("data")
        url = data.get(field) if isinstance(data, dict) else None
        item: dict = {"name": f"task {t.get('id')}"}
        if region is not None:
            item["region_pct"] = region  # Label Studio's percentages; preprocess knows the image's size
        items.append(item)
        if not isinstance(url, str) or not url:
            failed[i] = {"error": {"reason": "no_image", "message": f"task {i} has no image URL in data.{field}"}}
            continue
        mine, image = commands.own_image(db.session, project_id, url)
        if mine:
            if image is None:
                failed[i] = {"error": {"reason": "not_found", "message": f"task {i}: {url[:100]} is not an image of "
                                                                           f"project {project_id}"}}
                continue
            raw[i] = runtime().blobs.read_bytes(image.blob_key)
            continue
        try:
            got = commands.task_image(link, url, policy)
        except FetchRefused as exc:
            failed[i] = {"error": {"reason": exc.reason, "message": str(exc)}}
            continue
        if got.data is not None:
            raw[i] = got.data
        else:
            item["url"] = got.url
    return items, raw, failed


_PCT = ("x", "y", "width", "height")


def _is_rectangle(value: dict) -> bool:
    """A drawn rectangle: all four percentages, as numbers."""
    return all(isinstance(value.get(k), (int, float)) and not isinstance(value.get(k), bool) for k in _PCT)


def _result(out: dict, control: dict, kind: str, version: str) -> dict:
    if "error" in out:  # no `result`: Label Studio stores no prediction and asks again later
        return {"model_version": version, "error": out["error"]["message"]}
    r = out["result"]
    names = {"from_name": control["from_name"], "to_name": control["to_name"]}
    if "detections" in r:  # the detector: one rectangle per object
        w, h = out["image_size"]
        found = [_rectangle(d, names, w, h) for d in r["detections"]]
        return {"result": found, "score": max((d["score"] for d in found), default=0.0), "model_version": version}
    if kind == "Choices":
        value = {"choices": [r["class_name"]]}
        return {"result": [{**names, "type": "choices", "value": value, "score": r["score"]}], "score": r["score"],
                "model_version": version}
    w, h = out["image_size"]
    return {"result": [_rectangle(r, names, w, h)], "score": r["score"], "model_version": version}


def _rectangle(r: dict, names: dict, w: int, h: int) -> dict:
    """A box {x, y, w, h} in pixels with its class as a Label Studio rectangle, in percent of the image."""
    box = r["box"]
    value = {"x": 100 * box["x"] / w, "y": 100 * box["y"] / h, "width": 100 * box["w"] / w,
             "height": 100 * box["h"] / h, "rotation": 0, "rectanglelabels": [r["class_name"]]}
    return {**names, "type": "rectanglelabels", "original_width": w, "original_height": h, "image_rotation": 0,
            "value": value, "score": r["score"]}


@bp.route("/versions")
class Versions(MethodView):
    @bp.response(200, LabelStudioVersions)
    def get(self, project_id):
        """The model versions Label Studio can choose from: the project's deployments, newest first."""
        require_role(project_id)
        ids = db.session.scalars(select(Deployment.id).where(Deployment.project_id == project_id)
                                 .order_by(Deployment.id.desc()))
        active = [getattr(active_deployment(db.session, project_id, t), "id", None)
                  for t in ("detection", "suggestion", "classification")]
        current = next((f"loopline-deployment-{a}" for a in active if a is not None), None)
        return {"versions": [f"loopline-deployment-{i}" for i in ids], "model_version": current}


@bp.route("/webhook")
class Webhook(MethodView):
    @bp.arguments(LabelStudioEventIn)
    @bp.response(200, LabelStudioEvent)
    @bp.alt_response(202, schema=LabelStudioEvent, description="Start training: the recipe's job")
    def post(self, body, project_id):
        """Label Studio's webhook: an annotation created or updated becomes the human boxes of the matching
        loopline image (the same event twice changes nothing); Start training starts the project's training
        recipe as a job (202). Events of another Label Studio project: 400; other actions are ignored."""
        require_role(project_id, Role.annotator)
        action = body["action"]
        commands.check_event_project(commands.get_link(db.session, project_id), body, project_id)
        if action == commands.TRAINING_EVENT:
            job = commands.start_training(celery(), runtime(), db.session, project_id, current_user().id)
            return {"action": action, "status": "started", "job": job}, 202
        if action not in commands.ANNOTATION_EVENTS:
            return {"action": action, "status": "ignored"}
        done = commands.import_annotation(db.session, project_id, body, current_user().id,
                                          fetch_policy(runtime().settings))
        return {"action": action, "status": "imported" if done.pop("changed") else "unchanged", **done}


@bp.route("/connection")
class Connection(MethodView):
    @bp.response(200, LabelStudioConnection)
    def get(self, project_id):
        """The Label Studio this project reads task files from (the API key is never shown)."""
        require_role(project_id)
        return _connection(commands.get_link(db.session, project_id))

    @bp.arguments(LabelStudioConnectionIn)
    @bp.response(200, LabelStudioConnection)
    def put(self, body, project_id):
        """Set Label Studio's address, API key or project (what `/setup` otherwise sends); omitted fields stay."""
        require_role(project_id, Role.admin)
        return _connection(commands.connect(db.session, project_id, body))


def _connection(link) -> dict:
    return {"url": getattr(link, "url", None), "ls_project": getattr(link, "ls_project", None),
            "api_key_set": bool(getattr(link, "api_key", None))}


@bp.route("/training")
class Training(MethodView):
    @bp.response(200, TrainingRecipe)
    def get(self, project_id):
        """The training recipe Label Studio's Start training runs."""
        require_role(project_id)
        return {"recipe": getattr(commands.get_link(db.session, project_id), "recipe", None)}

    @bp.arguments(TrainingRecipeIn)
    @bp.response(200, TrainingRecipe)
    def put(self, body, project_id):
        """Define what Start training runs: a dataset definition (built again on the current boxes), the
        checkpoint to train from (forked unless fresh) and the epochs."""
        require_role(project_id, Role.annotator)
        return {"recipe": commands.set_recipe(db.session, project_id, body).recipe}
