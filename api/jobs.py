"""Jobs: submit the kinds that take no more than a queue and a project, list, inspect, cancel.

Later job kinds (ingest, dataset builds, training, deployment) are submitted by their own resources;
they all appear here.
"""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import or_, select

from api.auth import current_user, may_see_job, member_project_ids, require_role, role_in
from api.blueprint import Blueprint, page
from api.errors import ApiError
from api.extensions import celery, db, runtime
from api.schemas import JobBatchIn, JobIn, JobList, JobOut, JobPage, JobQuery
from store.schema import Job, Role
from services import jobs as job_service
from services.retry import retry
from services.registry import get_kind

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs", description="Jobs on every queue, and their live state")

GENERIC_KINDS = {"probe": set()}  # kind -> accepted params


def visible_job(job_id: str) -> Job:
    job = db.session.get(Job, job_id)
    if not may_see_job(job, current_user()):
        raise ApiError(404, f"job {job_id} not found")
    return job


@bp.route("")
class Jobs(MethodView):
    @bp.arguments(JobQuery, location="query")
    @bp.response(200, JobPage)
    def get(self, args):
        """Newest first; filter by project, kind, status and queue."""
        user = current_user()
        q = select(Job)
        if not user.is_superuser:
            q = q.where(or_(Job.project_id.in_(member_project_ids(user)), (Job.project_id.is_(None)) & (Job.user_id == user.id)))
        if "project_id" in args:
            require_role(args["project_id"])
            q = q.where(Job.project_id == args["project_id"])
        if "kind" in args:
            q = q.where(Job.kind == args["kind"])
        if "status" in args:
            q = q.where(Job.status == args["status"])
        if "queue" in args:
            q = q.where(Job.queue == args["queue"].value)
        return page(q.order_by(Job.created_at.desc(), Job.id), args)

    @bp.arguments(JobIn)
    @bp.response(202, JobOut)
    def post(self, data):
        """Enqueue a job. The probe runs on the queue you name and proves it end to end."""
        return job_service.submit_many(celery(), runtime(), db.session, [_job_spec(data)])[0]


@bp.route("/batch")
class JobBatch(MethodView):
    @bp.arguments(JobBatchIn)
    @bp.response(202, JobList)
    def post(self, data):
        """Enqueue up to 500 jobs in one request: all are validated before any is written."""
        specs = [_job_spec(item, f"jobs.{i}.") for i, item in enumerate(data["jobs"])]
        jobs = job_service.submit_many(celery(), runtime(), db.session, specs)
        return {"items": jobs}


def _job_spec(data: dict, where: str = "") -> dict:
    """Check one submission (kind, params, queue, project role) and return what `submit_many` takes."""
    kind = get_kind(data["kind"])
    if kind.name not in GENERIC_KINDS:
        raise ApiError(400, f"job kind {kind.name!r} is submitted through its own resource",
                       fields={f"{where}kind": ["not submittable here"]})
    extra = sorted(set(data["params"]) - GENERIC_KINDS[kind.name])
    if extra:
        raise ApiError(400, f"{kind.name} takes no params {extra}", fields={f"{where}params": [f"unknown: {extra}"]})
    queue = data.get("queue") or kind.queue
    if queue is None:
        raise ApiError(400, f"job kind {kind.name!r} needs a queue", fields={f"{where}queue": ["required for this kind"]})
    if data["project_id"] is not None:
        require_role(data["project_id"], Role.annotator)
    return {"kind": kind.name, "params": data["params"], "queue": queue, "project_id": data["project_id"],
            "user_id": current_user().id}


@bp.route("/<string(length=36):job_id>")  # a job id is a UUID
class JobItem(MethodView):
    @bp.response(200, JobOut)
    def get(self, job_id):
        return visible_job(job_id)


@bp.route("/<string(length=36):job_id>/cancel")
class JobCancel(MethodView):
    @bp.response(202, JobOut)
    def post(self, job_id):
        """A queued job is cancelled at once; a running job stops at its next step."""
        job = visible_job(job_id)
        user = current_user()
        if job.user_id != user.id and not user.is_superuser:
            if job.project_id is None or role_in(job.project_id, user) is not Role.admin:
                raise ApiError(403, "only the job's submitter or a project admin can cancel it")
        try:
            job = job_service.cancel(celery(), runtime(), db.session, job.id)
        except job_service.JobStateError as exc:
            raise ApiError(409, str(exc)) from None
        return job


@bp.route("/<string(length=36):job_id>/retry")
class JobRetry(MethodView):
    @bp.response(202, JobOut)
    def post(self, job_id):
        """A new job with the same request as one that ended (failed, cancelled or succeeded), through its
        resource's own rules: a dataset is requested again, a checkpoint trains again on the same dataset
        with the same parameters, a checkpoint is deployed again, a probe is sent again."""
        job = visible_job(job_id)
        user = current_user()
        if job.project_id is not None:
            require_role(job.project_id, Role.annotator)
        elif job.user_id != user.id and not user.is_superuser:
            raise ApiError(403, "only the job's submitter can retry it")
        return retry(celery(), runtime(), db.session, job, user.id)
