"""Label Studio's ML backend protocol (`/health`, `/setup`, `/predict`) over a project's active
deployment, so a team annotating in Label Studio gets loopline's boxes there.

Connect it in Label Studio (Settings → Model) with the URL `<loopline>/api/projects/<id>/label-studio`
and Basic auth: any user name, a loopline token as the password. `/predict` answers each task with a
`rectanglelabels` result from the active box suggester around the rectangle the annotator drew when
Label Studio sends one (interactive pre-annotation), with one rectangle per object the active detector
finds in the whole image otherwise (409 saying so when no detector is deployed), or with `choices` from
the active classifier when the labeling config has Choices and no RectangleLabels. Task images are
fetched with the ingest SSRF rules; images served by this loopline project are read from the store.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import select

from api.auth import require_role
from api.blueprint import Blueprint
from api.deployments import require_active
from api.errors import ApiError
from api.extensions import db, runtime
from api.inputs import ID_MAX, Text
from api.metrics import observe
from api.pipelines import run_chain
from store.schema import Image, Role
from services.deployments import active_deployment
from services.pipelines import plan

bp = Blueprint("labelstudio", __name__, url_prefix="/api/projects/<int:project_id>/label-studio",
               description="Label Studio ML backend protocol")
PIPELINE = {"suggestion": "suggest", "classification": "classify", "detection": "detect"}
DETECTOR_NEEDED = (" to find the objects of whole images: deploy a trained detector (the box suggester only refines "
                   "a rectangle drawn in Label Studio)")
OWN_IMAGE = re.compile(r"/api/projects/(\d+)/images/(\d+)/file$")
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
        items, raw = _items(project_id, body["tasks"], control["field"], context)
        task = "classification"
        if kind == "RectangleLabels":  # a drawn rectangle: the suggester refines it; a whole image: the detector
            task = "suggestion" if any("region_pct" in i for i in items) else "detection"
        deployment = require_active(project_id, task, DETECTOR_NEEDED if task == "detection" else " to predict with")
        stages = plan(PIPELINE[task], [],
                      ["image" if i in raw else "url" for i in range(len(items))]).stages
        answer = run_chain(stages, items, raw, deployment.id)
        observe("label-studio", deployment.id, answer.get("timings"))
        version = f"loopline-deployment-{deployment.id}"
        return {"results": [_result(out, control, kind, version) for out in answer["items"]], "model_version": version}


def _items(project_id: int, tasks: list, field: str, context: list) -> tuple[list[dict], dict[int, bytes]]:
    region = next(({k: float(r["value"][k]) for k in _PCT} for r in (context if isinstance(context, list) else [])
                   if isinstance(r, dict) and isinstance(r.get("value"), dict) and _is_rectangle(r["value"])), None)
    items, raw = [], {}
    for i, t in enumerate(tasks):
        data = t.get("data")
        url = data.get(field) if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise ApiError(400, f"task {i} has no image URL in data.{field}", fields={f"tasks.{i}": ["no image"]})
        own = OWN_IMAGE.search(url.split("?")[0])
        if own and int(own.group(1)) == project_id:
            image_id = int(own.group(2))
            image = None if image_id > ID_MAX else db.session.scalar(
                select(Image).where(Image.id == image_id, Image.project_id == project_id))
            if image is None:
                raise ApiError(404, f"task {i}: image {own.group(2)} not found in project {project_id}")
            raw[i] = runtime().blobs.read_bytes(image.blob_key)
            item = {"name": f"image {image.id}"}
        else:
            item = {"url": url}
        if region is not None:
            item["region_pct"] = region  # Label Studio's percentages; preprocess knows the image's size
        items.append(item)
    return items, raw


_PCT = ("x", "y", "width", "height")


def _is_rectangle(value: dict) -> bool:
    """A drawn rectangle: all four percentages, as numbers."""
    return all(isinstance(value.get(k), (int, float)) and not isinstance(value.get(k), bool) for k in _PCT)


def _result(out: dict, control: dict, kind: str, version: str) -> dict:
    if "error" in out:
        return {"result": [], "score": 0.0, "model_version": version, "error": out["error"]["message"]}
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
