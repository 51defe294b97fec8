"""Authentication for every route — a bearer token, or the dashboard's session cookie — and project
access by membership role.

Ids are no authorization: a project the user is not a member of answers 404, as if it did not exist.
A cookie is sent by the browser on its own, so a cookie-authenticated write must also prove it comes
from the dashboard: the session's CSRF token in `X-CSRF-Token`, and an Origin that is the server's own.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, current_app, g, request
from sqlalchemy import select, update

from api.errors import ApiError
from api.extensions import db
from store.accounts import Caller, SignIn, caller_for_token, sign_in_for_cookie
from store.schema import ApiToken, Job, Membership, Project, Role
from store.schema.base import utcnow

# Liveness probes and scrapers carry no token; signing in is how a browser gets one; the dashboard's
# files are public (what they show comes from the API).
PUBLIC_ENDPOINTS = {"system.Health", "metrics.Metrics", "web.index", "web.asset"}
PUBLIC_CALLS = {("signin.SignIn", "POST")}
SESSION_COOKIE = "loopline_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
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
    if caller is not None:
        authenticate_touch(caller)
    return caller


def sign_in_from_cookie() -> SignIn | None:
    """The dashboard session the request's cookie stands for (None: no cookie, or it has ended)."""
    found = sign_in_for_cookie(db.session, request.cookies.get(SESSION_COOKIE))
    if found is not None:
        authenticate_touch(found.caller)
    return found


def authenticate_touch(caller: Caller) -> None:
    """Record that the caller's token was used (at most every few minutes: every request asks)."""
    now = utcnow()
    if caller.token_last_used_at is None or now - caller.token_last_used_at > _TOUCH_EVERY:
        db.session.execute(update(ApiToken).where(ApiToken.id == caller.token_id).values(last_used_at=now))


def origin_refused() -> str | None:
    """Why the request's Origin (or, without one, its Sec-Fetch-Site) is not the server's own; None if it is."""
    origin = request.headers.get("Origin")
    if origin is None:
        site = request.headers.get("Sec-Fetch-Site")
        return f"a {site} request" if site in ("cross-site", "same-site") else None
    if origin in current_app.config["LOOPLINE"].trusted_origins:
        return None
    if origin == "null" or urlsplit(origin).netloc != request.host:
        return f"a request from {origin}"
    return None


def check_csrf(sign_in: SignIn) -> None:
    """A cookie-authenticated write must come from the dashboard itself (403 otherwise)."""
    if request.method not in UNSAFE_METHODS:
        return
    refused = origin_refused()
    if refused is not None:
        raise ApiError(403, f"{refused} may not write with the session cookie", code="csrf")
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), sign_in.csrf_token.encode()):
        raise ApiError(403, f"missing or wrong {CSRF_HEADER} header: a write signed in by cookie must send the "
                            "session's CSRF token (from GET /api/session)", code="csrf")


def init_auth(app: Flask) -> None:
    @app.before_request
    def _require_token():
        if request.endpoint in PUBLIC_ENDPOINTS or (request.endpoint, request.method) in PUBLIC_CALLS:
            return None
        if request.method == "OPTIONS":
            return None
        if request.endpoint is None:
            return None  # a 404 or 405 follows; it reveals nothing
        token = token_from_request()
        if token is not None:
            user = authenticate(token)
            if user is None:
                raise ApiError(401, "invalid or revoked token")
            g.user = user
            return None
        sign_in = sign_in_from_cookie()
        if sign_in is None:
            if SESSION_COOKIE in request.cookies:
                raise ApiError(401, "your session has ended (signed out, expired or its token revoked): sign in again")
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>' (or sign in)")
        check_csrf(sign_in)
        g.user, g.sign_in = sign_in.caller, sign_in
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
