"""Deployments: export a checkpoint to ONNX (a job on the deployment queue), list them, roll back."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from api.auth import current_user, require_role
from api.blueprint import Blueprint, Extended, in_project, page, referenced
from api.errors import ApiError
from api.extensions import celery, db, runtime
from api.files import download_doc, send_blob
from api.model_schemas import DeploymentIn, DeploymentOut, DeploymentPage, DeploymentQuery
from store.schema import Checkpoint, Deployment, DeploymentStatus, DeploymentTask, Job, Role
from services.deployments import DeployError, activate, active_deployment, request_deployment

bp = Blueprint("deployments", __name__, url_prefix="/api/projects/<int:project_id>/deployments",
               description="ONNX deployments of checkpoints; the active one serves suggestions and pipelines")


def get_deployment(project_id: int, deployment_id: int) -> Deployment:
    return in_project(Deployment, deployment_id, project_id, "deployment")


def no_deployment(project_id: int, task: str, purpose: str) -> ApiError:
    """409 `no_deployment`: "project P has no active TASK deployment" + `purpose` (what it was needed for)."""
    return ApiError(409, f"project {project_id} has no active {task} deployment{purpose}", code="no_deployment")


def require_active(project_id: int, task: str, purpose: str) -> Deployment:
    """The project's active deployment for `task`, or `no_deployment`."""
    deployment = active_deployment(db.session, project_id, task)
    if deployment is None:
        raise no_deployment(project_id, task, purpose)
    return deployment


@bp.route("")
class Deployments(MethodView):
    @bp.arguments(DeploymentQuery, location="query")
    @bp.response(200, DeploymentPage)
    def get(self, args, project_id):
        """Deployments of the project, newest first; filter by task, checkpoint, status and whether active."""
        require_role(project_id)
        q = select(Deployment).where(Deployment.project_id == project_id)
        if "task" in args:
            q = q.where(Deployment.task == DeploymentTask(args["task"]))
        for key in ("active", "status", "checkpoint_id"):
            if key in args:
                q = q.where(getattr(Deployment, key) == args[key])
        return page(q.order_by(Deployment.id.desc()), args)

    @bp.arguments(DeploymentIn)
    @bp.response(202, DeploymentOut)
    def post(self, data, project_id):
        """Deploy a checkpoint (202 with the job): export to ONNX, compare with Keras on sample inputs
        (refused over the tolerance), store, and make it the active model of its task unless
        `activate` is false."""
        require_role(project_id, Role.admin)
        checkpoint = referenced(Checkpoint, data["checkpoint_id"], project_id, "checkpoint", "checkpoint_id")
        try:
            deployment = request_deployment(celery(), runtime(), db.session, checkpoint, activate=data["activate"],
                                            user_id=current_user().id)
        except DeployError as exc:
            raise ApiError(409, str(exc), fields={"checkpoint_id": [str(exc)]}) from None
        return Extended(deployment, job=db.session.get(Job, deployment.job_id))


@bp.route("/<int:deployment_id>")
class DeploymentItem(MethodView):
    @bp.response(200, DeploymentOut)
    def get(self, project_id, deployment_id):
        require_role(project_id)
        return get_deployment(project_id, deployment_id)


@bp.route("/<int:deployment_id>/activate")
class Activate(MethodView):
    @bp.response(200, DeploymentOut)
    def post(self, project_id, deployment_id):
        """Make this (ready) deployment the active one of its task: a rollback when it is an older one.
        Inference workers use it from their next request on."""
        require_role(project_id, Role.admin)
        deployment = get_deployment(project_id, deployment_id)
        if deployment.status is not DeploymentStatus.ready:
            raise ApiError(409, f"deployment {deployment.id} is {deployment.status.value}"
                           + (f": {deployment.error}" if deployment.error else "") + "; only a ready one can be active")
        return activate(runtime(), db.session, deployment)


@bp.route("/<int:deployment_id>/model")
class Model(MethodView):
    @bp.doc(**download_doc("application/octet-stream", description="the ONNX model"))
    def get(self, project_id, deployment_id):
        """The ONNX model file (input `image`, NHWC float32 as `preprocessing` says; named outputs)."""
        require_role(project_id)
        deployment = get_deployment(project_id, deployment_id)
        if deployment.model_key is None:
            raise ApiError(409, f"deployment {deployment.id} is {deployment.status.value}; it has no model file")
        return send_blob(deployment.model_key, mimetype="application/octet-stream",
                         name=f"deployment-{deployment.id}.onnx", etag=deployment.model_key,
                         cache_control="private, max-age=31536000, immutable",
                         gone=f"the model file of deployment {deployment.id} is missing")
