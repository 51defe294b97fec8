"""Socket.IO: a client presents its token (or, from the dashboard, its session cookie) when it connects
and joins only rooms it may see.

Rooms: `project:<id>` (every job event of a project) and `job:<id>` (one job). Events are emitted by
any process through the Redis message queue; this server relays them to the rooms' clients. Access is
checked again when it changes (`api.live_access`): a socket leaves the rooms its user lost.
"""

from __future__ import annotations

from flask import Flask, request, session
from flask_socketio import ConnectionRefusedError, join_room, leave_room

from api.auth import (
    SESSION_COOKIE, authenticate, may_see_job, origin_refused, role_in, sign_in_from_cookie, token_from_request,
)
from api.extensions import db, socketio
from api.live_access import session_room, token_room, user_room
from store.accounts import Caller, SignIn, caller_for_token, caller_for_user, sign_in_for_cookie
from store.schema import Job


def _token(auth) -> str | None:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return auth["token"]
    return token_from_request()


def socket_user() -> Caller | None:
    """The user this Socket.IO connection authenticated as at connect."""
    return caller_for_user(db.session, session["user_id"]) if session.get("user_id") else None


def _room_allowed(user: Caller, data) -> tuple[str | None, str | None]:
    """(room, None) if the user may join, else (None, reason)."""
    if not isinstance(data, dict):
        return None, "send {'project': <id>} or {'job': <id>}"
    if "project" in data:
        pid = data["project"]
        if not isinstance(pid, int) or isinstance(pid, bool):
            return None, "project must be an integer id"
        if role_in(pid, user) is None:
            return None, f"project {pid} not found"
        return f"project:{pid}", None
    if "job" in data:
        job = db.session.get(Job, data["job"]) if isinstance(data["job"], str) else None
        if not may_see_job(job, user):
            return None, f"job {data['job']} not found"
        return f"job:{job.id}", None
    return None, "send {'project': <id>} or {'job': <id>}"


def forbidden_rooms(app: Flask, user_id: int | None, rooms: list[str]) -> list[str]:
    """Those of a socket's `rooms` (`project:<id>`, `job:<id>`) its user may no longer see."""
    with app.app_context():
        user = caller_for_user(db.session, user_id) if user_id is not None else None
        return [room for room in rooms if user is None or _room_allowed(user, _as_request(room))[0] != room]


def _as_request(room: str) -> dict:
    kind, _, value = room.partition(":")
    return {"project": int(value)} if kind == "project" else {kind: value}


def register_socketio_handlers() -> None:
    @socketio.on("connect")
    def _connect(auth=None):
        token = _token(auth)
        if token is None and request.cookies:
            return _connect_signed_in()
        user = authenticate(token)
        if user is None:
            raise ConnectionRefusedError("invalid or missing token: connect with auth={'token': <token>}")
        session["user_id"] = user.id
        join_room(user_room(user.id))  # so that a change of access finds this socket in any process
        if user.token_id is not None:
            join_room(token_room(user.token_id))
            db.session.rollback()  # a fresh read: revoked meanwhile, before the revocation could find this socket?
            if caller_for_token(db.session, token) is None:
                raise ConnectionRefusedError("invalid or revoked token")
        return True

    def _connect_signed_in() -> bool:
        """The dashboard's connection: its session cookie, from the server's own origin only (a page of
        another site must not open a socket that the browser's cookie signs in)."""
        refused = origin_refused()
        if refused is not None:
            raise ConnectionRefusedError(f"{refused} may not connect with the session cookie")
        sign_in: SignIn | None = sign_in_from_cookie()
        if sign_in is None:
            raise ConnectionRefusedError("not signed in: sign in again, or connect with auth={'token': <token>}")
        session["user_id"] = sign_in.caller.id
        join_room(user_room(sign_in.caller.id))
        join_room(token_room(sign_in.caller.token_id))
        join_room(session_room(sign_in.session_id))
        db.session.rollback()  # a fresh read: signed out or revoked before those rooms could find this socket?
        if sign_in_for_cookie(db.session, request.cookies.get(SESSION_COOKIE)) is None:
            raise ConnectionRefusedError("not signed in: sign in again")
        return True

    @socketio.on("join")
    def _join(data=None):
        user = socket_user()
        if user is None:
            return {"ok": False, "error": "not authenticated"}
        room, reason = _room_allowed(user, data)
        if room is None:
            return {"ok": False, "error": reason}
        join_room(room)
        db.session.rollback()  # a fresh read: removed meanwhile, before the eviction could find this socket?
        again, reason = _room_allowed(user, data)
        if again is None:
            leave_room(room)
            return {"ok": False, "error": reason}
        return {"ok": True, "room": room}

    @socketio.on("leave")
    def _leave(data=None):
        user = socket_user()
        room, reason = _room_allowed(user, data) if user else (None, "not authenticated")
        if room is None:
            return {"ok": False, "error": reason}
        leave_room(room)
        return {"ok": True, "room": room}
