"""Health, the caller's identity, and the queues as the broker sees them."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select, text

from api.auth import current_user, may_see_job
from api.blueprint import Blueprint
from api.errors import ApiError
from api.extensions import db, runtime
from api.schemas import HealthOut, MeOut, QueueOut
from services import queue_status
from store.schema import Membership, Project

bp = Blueprint("system", __name__, url_prefix="/api", description="Health, identity and queues")


@bp.route("/health")
class Health(MethodView):
    @bp.doc(security=[])
    @bp.response(200, HealthOut)
    def get(self):
        """Liveness and readiness: the catalog and Redis answer. No token needed."""
        problems = {}
        try:
            db.session.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001
            problems["catalog"] = type(exc).__name__
        try:
            runtime().redis.ping()
        except Exception as exc:  # noqa: BLE001
            problems["redis"] = type(exc).__name__
        if problems:
            raise ApiError(503, f"unavailable: {problems}", code="unavailable")
        return {"status": "ok"}


@bp.route("/me")
class Me(MethodView):
    @bp.response(200, MeOut)
    def get(self):
        user = current_user()
        rows = db.session.execute(
            select(Project.id, Project.name, Membership.role).join(Membership, Membership.project_id == Project.id)
            .where(Membership.user_id == user.id).order_by(Project.id)
        ).all()
        return {"user": user, "memberships": [{"project_id": i, "project": n, "role": r.value} for i, n, r in rows]}


@bp.route("/queues")
class Queues(MethodView):
    @bp.response(200, QueueOut(many=True))
    def get(self):
        """The queue table, with what waits and runs in each queue, the workers consuming it (their
        entries are at most a few seconds old) and how many of its jobs ended lately."""
        user = current_user()
        return queue_status.overview(runtime(), db.session, lambda job: may_see_job(job, user))
