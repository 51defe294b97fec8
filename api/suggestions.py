"""Box suggestions: the annotator marks a region (or clicks a point), the active box suggester answers
with a tight box, a class and a score, stored as a proposed model annotation. A click is answered by the
best detection of the active detector that contains it, when there is one. Also a Socket.IO event."""

from __future__ import annotations

import time

from flask.views import MethodView
from sqlalchemy import Row, bindparam, insert, select, update

from api.auth import current_user, demand_role, member_role
from api.blueprint import Blueprint
from api.deployments import no_deployment
from api.errors import ApiError, load_input
from api.extensions import celery, db, runtime
from api.inputs import ID_MAX
from api.metrics import observe
from api.model_schemas import SuggestionIn, SuggestionOut
from handlers.ops import region_in_image
from store.db import write_gate
from store.schema import Annotation, AnnotationSource, AnnotationStatus, Image, Membership, Project, Role
from store.schema.base import utcnow
from services.calls import CallTimeout, call
from services.deployments import publish_active

bp = Blueprint("suggestions", __name__, url_prefix="/api/projects/<int:project_id>",
               description="Box suggestions from the active deployment")
POINT_REGION = 0.25  # a click stands for a square region of this share of the image's shorter side
CLICK_THRESHOLD = 0.1  # a detection a click may pick


@bp.route("/images/<int:image_id>/suggestions")
class Suggestions(MethodView):
    @bp.arguments(SuggestionIn)
    @bp.response(201, SuggestionOut)
    def post(self, data, project_id, image_id):
        """Ask the active `box_suggester` deployment for the box around `region` (x, y, w, h in image
        pixels) or `point`. Answers the stored proposal and where the time went (queue wait, image load,
        model). 409 when the project has no active suggestion deployment."""
        return suggest(project_id, image_id, data)


def suggest(project_id: int, image_id: int, data: dict) -> dict:
    started = time.perf_counter()
    image = _image_to_annotate(project_id, image_id)
    region = _region(image, data)
    detected = _detected_at(project_id, image, data["point"]) if "point" in data else None
    if detected is not None:  # a click inside an object the active detector found: that object's box
        deployment_id, answer = detected
        region = (0.0, 0.0, float(image.width), float(image.height))
    else:
        deployment_id = _active(project_id)
        try:
            answer = _call(deployment_id, image, region)
        except ApiError as exc:
            observe("suggestion", deployment_id, None, outcome=str(exc.status))
            raise
    stored = time.perf_counter()
    with write_gate(runtime().engine):  # one short write transaction: the revision, the proposal, COMMIT
        annotation, revision = _store_proposal(project_id, image_id, {
            "class_id": answer["class_id"], "score": answer["score"], "deployment_id": deployment_id, **answer["box"]})
    done = time.perf_counter()
    timings = {**answer["timings"], "store_ms": round((done - stored) * 1000, 2),
               "total_ms": round((done - started) * 1000, 2)}
    observe("suggestion", deployment_id, timings)
    return {"annotation": annotation, "revision": revision, "class_name": answer["class_name"],
            "deployment_id": deployment_id, "timings": timings,
            "region": dict(zip(("x", "y", "w", "h"), (region[0], region[1], region[2] - region[0],
                                                      region[3] - region[1]), strict=True))}


def _image_to_annotate(project_id: int, image_id: int) -> Row:
    """(width, height, blob_key) of the image if the caller may annotate in its project, else 404/403: the
    role and the image in one query (the suggestion path's reads are its largest CPU cost after the call)."""
    user = current_user()
    row = db.session.execute(
        select(Membership.role, Image.width, Image.height, Image.blob_key).select_from(Project)
        .outerjoin(Membership, (Membership.project_id == Project.id) & (Membership.user_id == user.id))
        .outerjoin(Image, (Image.id == image_id) & (Image.project_id == Project.id))
        .where(Project.id == project_id)
    ).first()
    demand_role(project_id, None if row is None else member_role(row.role, user), Role.annotator)
    if row.blob_key is None:
        raise ApiError(404, f"image {image_id} not found in project {project_id}")
    return row


_IMAGES, _ANNOTATIONS = Image.__table__, Annotation.__table__
_BUMP = (update(_IMAGES).where(_IMAGES.c.id == bindparam("image"), _IMAGES.c.project_id == bindparam("project"))
         .values(annotation_revision=_IMAGES.c.annotation_revision + 1).returning(_IMAGES.c.annotation_revision))
_INSERT = insert(_ANNOTATIONS).returning(_ANNOTATIONS.c.id)


def _store_proposal(project_id: int, image_id: int, box: dict) -> tuple[dict, int]:
    """Bump the image's revision and insert the proposal (Core statements, no unit of work) in a transaction
    of their own, short enough to sit inside the write gate; 404 when the image was deleted while the model
    ran. Answers the inserted row's values (with its id), which AnnotationOut dumps, and the image's revision."""
    now = utcnow()
    with runtime().engine.begin() as conn:
        revision = conn.execute(_BUMP, {"image": image_id, "project": project_id}).scalar()
        if revision is None:
            raise ApiError(404, f"image {image_id} not found in project {project_id}")
        row = {"image_id": image_id, **box, "source": AnnotationSource.model, "status": AnnotationStatus.proposed,
               "revision": 1, "created_by": current_user().id, "created_at": now, "updated_at": now}
        row["id"] = conn.execute(_INSERT, row).scalar_one()
    return row, revision


def _region(image: Row, data: dict) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) inside the image, or 400 saying what is wrong."""
    if ("region" in data) == ("point" in data):
        raise ApiError(400, "send exactly one of region {x, y, w, h} or point {x, y}",
                       fields={"region": ["region or point, not both or neither"]})
    size = f"{image.width}x{image.height}"
    if "point" in data:
        px, py = data["point"]["x"], data["point"]["y"]
        if not (0 <= px < image.width and 0 <= py < image.height):
            raise ApiError(400, f"point ({px:g}, {py:g}) is outside the {size} image", fields={"point": ["outside"]})
        half = max(16.0, POINT_REGION * min(image.width, image.height)) / 2
        return max(0.0, px - half), max(0.0, py - half), min(float(image.width), px + half), \
            min(float(image.height), py + half)
    r = data["region"]
    if r["w"] <= 0 or r["h"] <= 0:
        raise ApiError(400, f"region has zero or negative size ({r['w']:g} x {r['h']:g})",
                       fields={"region": ["w and h must be positive"]})
    box = region_in_image(r["x"], r["y"], r["w"], r["h"], image.width, image.height)
    if box is None:
        raise ApiError(400, f"region [{r['x']:g}, {r['y']:g}, {r['w']:g}, {r['h']:g}] (x, y, w, h) leaves the "
                            f"{size} image", fields={"region": ["outside the image"]})
    return box


def _active(project_id: int) -> int:
    """The active suggestion deployment: Redis first (set on activation), the catalog when the key is gone."""
    rt = runtime()
    cached = rt.redis.get(rt.keys.active_deployment(project_id, "suggestion"))
    if cached is not None:
        return int(cached)
    deployment_id = publish_active(rt, db.session, project_id, "suggestion")
    if deployment_id is None:
        raise no_deployment(project_id, "suggestion", f": deploy a trained box_suggester "
                                                      f"(POST /api/projects/{project_id}/deployments)")
    return deployment_id


def _detected_at(project_id: int, image: Row, point: dict) -> tuple[int, dict] | None:
    """(detector deployment, answer) for the best detection that contains the clicked point, or None: no active
    detector, or none of its detections holds the point (the suggester answers then)."""
    rt = runtime()
    cached = rt.redis.get(rt.keys.active_deployment(project_id, "detection"))
    deployment_id = int(cached) if cached is not None else publish_active(rt, db.session, project_id, "detection")
    if deployment_id is None:
        return None
    found = _call(deployment_id, image, None, call_name="detect")
    for d in found["detections"]:  # best first
        b = d["box"]
        if b["x"] <= point["x"] <= b["x"] + b["w"] and b["y"] <= point["y"] <= b["y"] + b["h"]:
            return deployment_id, {**d, "timings": found["timings"]}
    return None


def _call(deployment_id: int, image: Row, region, call_name: str = "suggest") -> dict:
    settings = runtime().settings
    payload = {"deployment_id": deployment_id, "blob_key": image.blob_key}
    payload.update({"region": list(region)} if call_name == "suggest" else {"threshold": CLICK_THRESHOLD})
    try:
        answer = call(celery(), runtime(), call_name, payload, settings.suggestion_timeout)
    except CallTimeout as exc:
        raise ApiError(503, f"{exc}; is the inference pool running?") from None
    if not answer.get("ok"):
        raise ApiError(502, f"the inference worker failed: {answer.get('error')}")
    return answer


def register_socketio_suggestions(socketio) -> None:
    """`suggest` event: {"project": id, "image": id, "region"|"point": ...} → the same answer as REST,
    or {"error": {"status", "message"}} (acknowledgement of `call`)."""
    from flask import g

    from api.realtime import socket_user

    @socketio.on("suggest")
    def _suggest(data=None):
        g.user = socket_user()
        if g.user is None:
            return {"error": {"status": 401, "message": "not authenticated"}}
        try:
            if not isinstance(data, dict) or not all(type(data.get(k)) is int and 0 < data[k] <= ID_MAX
                                                     for k in ("project", "image")):  # ids the catalog can hold
                raise ApiError(400, "send {'project': id, 'image': id, 'region': {x, y, w, h}} or a 'point'")
            body = {k: v for k, v in data.items() if k in ("region", "point")}
            parsed = load_input(SuggestionIn(), body)
            return SuggestionOut().dump(suggest(data["project"], data["image"], parsed))
        except ApiError as exc:
            db.session.rollback()
            return {"error": {"status": exc.status, "code": exc.code, "message": exc.message, "fields": exc.fields}}
