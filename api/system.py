"""Health, the caller's identity, and the queues as the broker sees them."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select, text

from api.auth import current_user
from api.blueprint import Blueprint
from api.errors import ApiError
from api.extensions import db, runtime
from api.schemas import HealthOut, MeOut, QueueOut
from store.schema import Membership, Project
from services.queues import QUEUES

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
        """The queue table, with how many messages wait in each queue."""
        r = runtime().redis
        return [
            {"name": q.value, "waiting": r.llen(q.value),
             **{k: getattr(s, k) for k in ("description", "acks_late", "time_limit", "expires",
                                          "visibility_timeout", "pool", "concurrency")}}
            for q, s in QUEUES.items()
        ]
