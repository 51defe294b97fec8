"""Live authorization for Socket.IO: a socket leaves the rooms it may no longer see, in every API process.

Who is in which room lives in each API process's memory, so a change in the catalog (a member removed,
a project deleted, a token revoked) is published, after its commit, as a control message on the
Socket.IO Redis channel; every API process applies it to the sockets it holds. A socket is in
`user:<id>`, `token:<id>` and, signed in by cookie, `session:<id>` (joined at connect): that is how a
process finds the sockets a change concerns. Redis delivers a channel's messages in order and the listener applies a control message
before reading the next, so no event published after it reaches an evicted socket.
"""

from __future__ import annotations

import json
import logging
from typing import Callable, Iterable

from redis.exceptions import RedisError
from socketio import RedisManager

from services.runtime import Runtime

log = logging.getLogger(__name__)

METHOD = "loopline.access"
NAMESPACE = "/"
GUARDED = ("project:", "job:")  # the rooms `join` admits to; the others are the server's own


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


def token_room(token_id: int) -> str:
    return f"token:{token_id}"


def session_room(session_id: int) -> str:
    return f"session:{session_id}"


def publish(rt: Runtime, *, recheck: Iterable[str] = (), disconnect: Iterable[str] = ()) -> None:
    """Sockets in `recheck` rooms re-check every project and job room they are in; sockets in
    `disconnect` rooms are disconnected. Call after the commit: the re-check reads the catalog."""
    message = {"method": METHOD, "recheck": list(recheck), "disconnect": list(disconnect)}
    try:
        rt.redis.publish(rt.keys.socketio_channel, json.dumps(message))
    except RedisError:  # the change is committed; while Redis is away no event reaches any socket either
        log.warning("could not publish a Socket.IO access change (Redis unreachable): %s", message)


def recheck_user(rt: Runtime, user_id: int) -> None:
    """After a user's membership was removed or changed."""
    publish(rt, recheck=[user_room(user_id)])


def recheck_project(rt: Runtime, project_id: int, member_ids: Iterable[int]) -> None:
    """After a project was deleted: everyone in its room, and its former members (in its job rooms)."""
    publish(rt, recheck=[f"project:{project_id}", *map(user_room, member_ids)])


def disconnect_token(rt: Runtime, token_id: int) -> None:
    """After a token was revoked: the sockets that connected with it."""
    publish(rt, disconnect=[token_room(token_id)])


def disconnect_session(rt: Runtime, session_id: int) -> None:
    """After a sign-out: the sockets that connected with that session's cookie."""
    publish(rt, disconnect=[session_room(session_id)])


class AccessManager(RedisManager):
    """python-socketio's Redis manager that also applies the control messages above.

    `forbidden(user_id, rooms)` returns those of `rooms` the user (None: unknown) may no longer see.
    """

    def __init__(self, url: str, channel: str, forbidden: Callable[[int | None, list[str]], list[str]]):
        super().__init__(url, channel=channel)
        self._forbidden = forbidden

    def _listen(self):
        for message in super()._listen():
            try:
                data = self.json.loads(message)
            except ValueError:
                yield message
                continue
            if isinstance(data, dict) and data.get("method") == METHOD:
                self._apply(data)  # here, in the listener thread: the events behind it wait
            else:
                yield data if isinstance(data, dict) else message

    def _apply(self, data: dict) -> None:
        try:
            for sid in self._sids(data.get("disconnect") or []):
                self.server.disconnect(sid, namespace=NAMESPACE, ignore_queue=True)
            for sid in self._sids(data.get("recheck") or []):
                self._recheck(sid)
        except Exception:  # noqa: BLE001 - the listener thread must keep relaying events
            self._get_logger().exception("could not apply access change %s", data)

    def _sids(self, rooms: list[str]) -> list[str]:
        return [sid for sid, _ in self.get_participants(NAMESPACE, rooms)] if rooms else []

    def _recheck(self, sid: str) -> None:
        # A snapshot: other threads join and leave rooms meanwhile.
        rooms = [name for name, members in list(self.rooms.get(NAMESPACE, {}).items()) if name and sid in members]
        guarded = [r for r in rooms if r.startswith(GUARDED)]
        if not guarded:
            return
        users = [int(r.removeprefix("user:")) for r in rooms if r.startswith("user:")]
        for room in self._forbidden(users[0] if users else None, guarded):
            self.basic_leave_room(sid, NAMESPACE, room)
