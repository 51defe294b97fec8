"""Detection: evaluations of detectors (COCO mAP on labelled images, kept by the checkpoint), pre-annotation
jobs with the active detector, and the project's pre-annotation setting. The rules are commands in
`services/evaluation.py` and `services/preannotate.py`; these views parse, call one, and serialise."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from api.auth import current_user, project_access, require_role
from api.blueprint import Blueprint, Extended, in_project, page
from api.data_schemas import QueryId
from api.extensions import celery, db, runtime
from api.inputs import ID_MAX, Text
from api.schemas import Id, JobOut, PageQuery, Strict, page_of
from services import evaluation as evaluations
from services import preannotate
from store.schema import Checkpoint, Evaluation, EvaluationStatus, Job, Role
from store.selection import SUBSETS

bp = Blueprint("detection", __name__, url_prefix="/api/projects/<int:project_id>",
               description="Detector evaluations (COCO mAP) and pre-annotation with the active detector")
IMAGE_IDS = fields.List(fields.Integer(strict=True, validate=validate.Range(min=1, max=ID_MAX)),
                        validate=validate.Length(min=1, max=10_000))
THRESHOLD = {"validate": validate.Range(min=0, max=1), "allow_nan": False}


class EvaluationIn(Strict):
    """What to score (a checkpoint or a deployment) on which images (a label map's selection, or ids)."""

    checkpoint_id = Id(metadata={"description": "a detector checkpoint (its Keras weights)"})
    deployment_id = Id(metadata={"description": "a ready detection deployment (its ONNX model)"})
    label_map_id = Id(metadata={"description": "the images with accepted boxes of this map's classes"})
    subset = fields.String(validate=validate.OneOf(SUBSETS), load_default="all")
    image_ids = IMAGE_IDS


class EvaluationOut(Schema):
    id = fields.Integer()
    project_id = fields.Integer()
    checkpoint_id = fields.Integer()
    deployment_id = fields.Integer(allow_none=True)
    status = fields.Enum(EvaluationStatus, by_value=fields.String)
    selection = fields.Dict(metadata={"description": "label_map_id and subset, or image_ids"})
    metrics = fields.Dict(metadata={"description": "map (COCO mAP@[.5:.95]), map50, images, objects, detections, "
                                                   "per_class {name: {map, map50, objects}}"})
    error = fields.String(allow_none=True)
    job_id = fields.String(allow_none=True)
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    job = fields.Nested(JobOut, metadata={"description": "the evaluation job (request)"})


EvaluationPage = page_of(EvaluationOut, "EvaluationPage")


class EvaluationQuery(PageQuery):
    checkpoint_id = QueryId()
    status = fields.Enum(EvaluationStatus, by_value=True)


class PreAnnotationIn(Strict):
    """Which images (exactly one of the three) and the score a detection needs to become a proposal."""

    image_ids = IMAGE_IDS
    ingest_job_id = Text(validate=validate.Length(min=1, max=36),
                                  metadata={"description": "the images an ingest job added"})
    unannotated = fields.Boolean(truthy={True}, falsy={False},  # JSON true or false only, not 0 or "yes"
                                 metadata={"description": "the project's images without any box"})
    threshold = fields.Float(metadata={"description": "default: the project's pre-annotation threshold"}, **THRESHOLD)


class PreAnnotationSettings(Strict):
    after_ingest = fields.Boolean(truthy={True}, falsy={False},
                                  metadata={"description": "start a pre-annotation job after every finished ingest"})
    threshold = fields.Float(metadata={"description": "the default score a detection needs"}, **THRESHOLD)


class PreAnnotationSettingsOut(Schema):
    after_ingest = fields.Boolean(attribute="pre_annotate_after_ingest")
    threshold = fields.Float(attribute="pre_annotate_threshold")


@bp.route("/evaluations")
class Evaluations(MethodView):
    @bp.arguments(EvaluationQuery, location="query")
    @bp.response(200, EvaluationPage)
    def get(self, args, project_id):
        """The project's evaluations, newest first; filter by checkpoint or status."""
        require_role(project_id)
        return page(_evaluations(project_id, args), args)

    @bp.arguments(EvaluationIn)
    @bp.response(202, EvaluationOut)
    def post(self, data, project_id):
        """Score a detector checkpoint or deployment on a selection of labelled images (202 with the job): COCO
        mAP@[.5:.95] and mAP@.5 by pycocotools' COCOeval, overall and per class. 404 for a checkpoint,
        deployment, label map or images of another project."""
        require_role(project_id, Role.annotator)
        ev = evaluations.request(celery(), runtime(), db.session, project_id, data, current_user().id)
        return Extended(ev, job=db.session.get(Job, ev.job_id))


def _evaluations(project_id: int, args: dict):
    q = select(Evaluation).where(Evaluation.project_id == project_id)
    for key in ("checkpoint_id", "status"):
        if key in args:
            q = q.where(getattr(Evaluation, key) == args[key])
    return q.order_by(Evaluation.id.desc())


@bp.route("/evaluations/<int:evaluation_id>")
class EvaluationItem(MethodView):
    @bp.response(200, EvaluationOut)
    def get(self, project_id, evaluation_id):
        require_role(project_id)
        return in_project(Evaluation, evaluation_id, project_id, "evaluation")


@bp.route("/checkpoints/<int:checkpoint_id>/evaluations")
class CheckpointEvaluations(MethodView):
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, EvaluationPage)
    def get(self, args, project_id, checkpoint_id):
        """The evaluations of this checkpoint (of its weights and of its deployments), newest first."""
        require_role(project_id)
        in_project(Checkpoint, checkpoint_id, project_id, "checkpoint")
        return page(_evaluations(project_id, {"checkpoint_id": checkpoint_id}), args)


@bp.route("/pre-annotations")
class PreAnnotations(MethodView):
    @bp.arguments(PreAnnotationIn)
    @bp.response(202, JobOut)
    def post(self, data, project_id):
        """Run the active detector over a selection (`image_ids`, `ingest_job_id` or `unannotated: true`) and
        store each detection above `threshold` as a proposed model box (202 with the job, on the inference
        queue). Images that already hold proposals of that deployment are skipped. 409 without an active
        detection deployment; 404 for images or an ingest job of another project."""
        project, _ = project_access(project_id, Role.annotator)
        return preannotate.request(celery(), runtime(), db.session, project, data, current_user().id)


@bp.route("/pre-annotation")
class PreAnnotationSetting(MethodView):
    @bp.response(200, PreAnnotationSettingsOut)
    def get(self, project_id):
        """The project's pre-annotation setting."""
        return project_access(project_id)[0]

    @bp.arguments(PreAnnotationSettings, required=False)  # no body changes nothing
    @bp.response(200, PreAnnotationSettingsOut)
    def put(self, data, project_id):
        """Change the setting: `after_ingest` makes every finished ingest start a pre-annotation job of the
        images it added with the active detector (when there is one), with `threshold`."""
        project, _ = project_access(project_id, Role.admin)
        return preannotate.update_settings(db.session, project, data)
