"""Dashboard sign-in: a loopline token becomes a server-side session behind an HttpOnly cookie.

The browser never keeps the token (no localStorage): it sends it once, here, and holds only the cookie,
which JavaScript cannot read. The answer carries the session's CSRF token, which the page keeps in memory
and sends with every write (`api.auth.check_csrf`); reloading the page asks `GET /api/session` for it again.
"""

from __future__ import annotations

from datetime import timedelta

from flask import after_this_request, current_app, g, request
from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy import delete

from api.auth import SESSION_COOKIE, authenticate, current_user, origin_refused
from api.blueprint import Blueprint
from api.errors import ApiError
from api.extensions import db, runtime
from api.inputs import Text
from api.live_access import disconnect_session
from api.schemas import Strict, UserOut
from store.accounts import open_web_session
from store.db import after_commit
from store.schema import WebSession

bp = Blueprint("signin", __name__, url_prefix="/api", description="Dashboard sign-in with a session cookie")


class SignInIn(Strict):
    token = Text(required=True, validate=validate.Length(min=1, max=128),
                 metadata={"description": "a loopline token (`loopline token create`)"})


class SessionOut(Schema):
    user = fields.Nested(UserOut, required=True)
    csrf_token = fields.String(required=True, metadata={"description": "send it as X-CSRF-Token with every write"})
    expires_at = fields.DateTime(required=True)


def _ttl() -> timedelta:
    return timedelta(hours=current_app.config["LOOPLINE"].session_ttl_hours)


@bp.route("/session", endpoint="SignIn")
class Session(MethodView):
    @bp.doc(security=[])
    @bp.arguments(SignInIn)
    @bp.response(200, SessionOut)
    def post(self, data):
        """Sign in: answers the session (and sets its cookie) for a valid token."""
        refused = origin_refused()  # no signing a victim's browser in to someone else's account
        if refused is not None:
            raise ApiError(403, f"{refused} may not sign in", code="csrf")
        caller = authenticate(data["token"])
        if caller is None:
            raise ApiError(401, "invalid or revoked token", fields={"token": ["invalid or revoked token"]})
        secret, sign_in = open_web_session(db.session, caller, _ttl())
        expires_at = db.session.get(WebSession, sign_in.session_id).expires_at

        @after_this_request
        def _set_cookie(response):
            response.set_cookie(SESSION_COOKIE, secret, max_age=int(_ttl().total_seconds()), path="/",
                                httponly=True, samesite="Lax", secure=request.is_secure)
            return response

        return {"user": caller, "csrf_token": sign_in.csrf_token, "expires_at": expires_at}

    @bp.response(200, SessionOut)
    def get(self):
        """The session the cookie stands for, with its CSRF token (401 without one)."""
        sign_in = _signed_in()
        return {"user": current_user(), "csrf_token": sign_in.csrf_token,
                "expires_at": db.session.get(WebSession, sign_in.session_id).expires_at}

    @bp.response(204)
    def delete(self):
        """Sign out: the session ends on the server, and its live connections are closed."""
        sign_in = _signed_in()
        db.session.execute(delete(WebSession).where(WebSession.id == sign_in.session_id))
        rt = runtime()
        after_commit(db.session, lambda: disconnect_session(rt, sign_in.session_id))

        @after_this_request
        def _clear_cookie(response):
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=request.is_secure)
            return response

        return None


def _signed_in():
    sign_in = getattr(g, "sign_in", None)
    if sign_in is None:
        raise ApiError(401, "not signed in with a session cookie (this route is the dashboard's)")
    return sign_in
