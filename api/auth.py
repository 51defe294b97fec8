"""Bearer-token authentication for every route, and project access by membership role.

Ids are no authorization: a project the user is not a member of answers 404, as if it did not exist.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, g, request
from sqlalchemy import select, update

from api.errors import ApiError
from api.extensions import db
from store.accounts import Caller, caller_for_token
from store.schema import ApiToken, Job, Membership, Project, Role
from store.schema.base import utcnow

PUBLIC_ENDPOINTS = {"system.Health", "metrics.Metrics"}  # liveness probes and scrapers carry no token
_TOUCH_EVERY = timedelta(minutes=5)


def token_from_request() -> str | None:
    """`Bearer <token>`, or HTTP Basic with the token as password (Label Studio's ML backend connection
    can only send Basic auth)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and request.authorization and request.authorization.password:
        return request.authorization.password
    return None


def authenticate(token: str | None) -> Caller | None:
    if not token:
        return None
    caller = caller_for_token(db.session, token)
    if caller is None:
        return None
    now = utcnow()
    if caller.token_last_used_at is None or now - caller.token_last_used_at > _TOUCH_EVERY:
        db.session.execute(update(ApiToken).where(ApiToken.id == caller.token_id).values(last_used_at=now))
    return caller


def init_auth(app: Flask) -> None:
    @app.before_request
    def _require_token():
        if request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
            return None
        if request.endpoint is None:
            return None  # a 404 or 405 follows; it reveals nothing
        token = token_from_request()
        if token is None:
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'")
        user = authenticate(token)
        if user is None:
            raise ApiError(401, "invalid or revoked token")
        g.user = user
        return None


def current_user() -> Caller:
    return g.user


def role_in(project_id: int, user: Caller) -> Role | None:
    """The user's role in the project; None when not a member or the project does not exist.
    One query of two columns (no Project or Membership row is loaded): every project route asks it."""
    row = db.session.execute(
        select(Project.id, Membership.role)
        .outerjoin(Membership, (Membership.project_id == Project.id) & (Membership.user_id == user.id))
        .where(Project.id == project_id)
    ).first()
    return None if row is None else member_role(row.role, user)


def member_role(membership: Role | None, user: Caller) -> Role | None:
    """The role a user has in an existing project given their membership's (None: not a member)."""
    return membership or (Role.admin if user.is_superuser else None)


def member_project_ids(user: Caller):
    """A subquery of the ids of the projects `user` is a member of (for list filters)."""
    return select(Membership.project_id).where(Membership.user_id == user.id)


def may_see_job(job: Job | None, user: Caller) -> bool:
    """A project's jobs are visible to its members; a job without a project to its submitter."""
    if job is None:
        return False
    if job.project_id is not None:
        return role_in(job.project_id, user) is not None
    return job.user_id == user.id or user.is_superuser


def require_role(project_id: int, need: Role = Role.viewer) -> Role:
    """The caller's role in the project, or 404 (not a member, or no such project) / 403 (role too low)."""
    return demand_role(project_id, role_in(project_id, current_user()), need)


def demand_role(project_id: int, role: Role | None, need: Role) -> Role:
    """`role` (from `role_in` or `member_role`) if it allows `need`, else 404 (None) or 403."""
    if role is None:
        raise ApiError(404, f"project {project_id} not found")
    if not role.allows(need):
        raise ApiError(403, f"this needs the {need.value} role in project {project_id}; you are {role.value}")
    return role


def project_access(project_id: int, need: Role = Role.viewer) -> tuple[Project, Role]:
    """`require_role`, and the project itself for the routes that read or change it."""
    role = require_role(project_id, need)
    return db.session.get(Project, project_id), role
