"""Socket.IO events from any process, through Flask-SocketIO's Redis message queue (no Flask app needed)."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def job_rooms(job_id: str, project_id: int | None, user_id: int | None = None) -> list[str]:
    """A job's own room and its project's; a job of no project goes to its submitter's sockets instead
    (every socket is in its user's room from connect), so their dashboards follow it too."""
    rooms = [f"job:{job_id}"]
    if project_id is not None:
        rooms.append(f"project:{project_id}")
    elif user_id is not None:
        rooms.append(f"user:{user_id}")
    return rooms


class Events:
    """Write-only Socket.IO emitter. An event is best effort: losing one never fails a job, because
    clients that reconnect read the job from the API."""

    def __init__(self, redis_url: str, channel: str):
        self._url = redis_url
        self._channel = channel
        self._sio = None
        self._lock = threading.Lock()

    def _server(self):
        with self._lock:
            if self._sio is None:
                from flask_socketio import SocketIO

                self._sio = SocketIO(message_queue=self._url, channel=self._channel)
            return self._sio

    def emit(self, event: str, data: dict, rooms: list[str]) -> None:
        try:
            self._server().emit(event, data, to=rooms, namespace="/")
        except Exception:  # noqa: BLE001 - the catalog, not the event, is the truth
            log.warning("could not emit %s to %s", event, rooms, exc_info=True)

    def job(self, payload: dict) -> None:
        self.emit("job", payload, job_rooms(payload["id"], payload.get("project_id"), payload.get("user_id")))
