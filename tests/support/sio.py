"""A Socket.IO client that records the events it receives, over the websocket transport."""

from __future__ import annotations

import threading
import time

import socketio


class Listener:
    def __init__(self, url: str, token: str | None):
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("job", self._on_job)
        self.sio.connect(url, auth={"token": token} if token else None, transports=["websocket"], wait_timeout=10)

    def _on_job(self, data):
        with self._cond:
            self.events.append(data)
            self._cond.notify_all()

    def join(self, **room) -> dict:
        return self.sio.call("join", room, timeout=5)

    def statuses(self, job_id: str) -> list[str]:
        out = []
        for e in self.events:
            if e["id"] == job_id and (not out or out[-1] != e["status"]):
                out.append(e["status"])
        return out

    def wait_for(self, job_id: str, status: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while status not in self.statuses(job_id):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {status} event for {job_id}; got {self.statuses(job_id)}")
                self._cond.wait(left)

    def close(self) -> None:
        self.sio.disconnect()
