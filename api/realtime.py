"""Socket.IO: a client presents its token when it connects and joins only rooms it may see.

Rooms: `project:<id>` (every job event of a project) and `job:<id>` (one job). Events are emitted by
any process through the Redis message queue; this server relays them to the rooms' clients. Access is
checked again when it changes (`api.live_access`): a socket leaves the rooms its user lost.
"""

from __future__ import annotations

from flask import Flask, session
from flask_socketio import ConnectionRefusedError, join_room, leave_room

from api.auth import authenticate, may_see_job, role_in, token_from_request
from api.extensions import db, socketio
from api.live_access import token_room, user_room
from store.accounts import Caller, caller_for_token, caller_for_user
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
