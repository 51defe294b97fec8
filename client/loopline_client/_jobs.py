"""`Loopline` methods for jobs: list, submit, cancel, retry, and follow/wait/watch over Socket.IO with
polling underneath."""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import time
from collections.abc import Callable, Iterator

from tqdm import tqdm

from loopline_client import types as t
from loopline_client._http import _body, _Http, TERMINAL
from loopline_client.errors import Unreachable


class _Jobs(_Http):
    """Jobs: read, submit, cancel, retry, follow to the end, watch a project's."""

    # --- jobs ----------------------------------------------------------------------------------
    def jobs(self, project_id: int | None = None, kind: str | None = None, status: str | None = None,
             queue: str | None = None, limit: int | None = None) -> Iterator[t.Job]:
        """Newest first."""
        return self._pages("/api/jobs", {"project_id": project_id, "kind": kind, "status": status, "queue": queue},
                           limit)

    def job(self, job_id: str) -> t.Job:
        return self._json("GET", f"/api/jobs/{job_id}")

    def submit_job(self, kind: str, queue: str | None = None, project_id: int | None = None,
                   params: dict | None = None) -> t.Job:
        return self._json("POST", "/api/jobs", json=_body(kind=kind, queue=queue, project_id=project_id, params=params))

    def cancel_job(self, job_id: str) -> t.Job:
        """A queued job ends `cancelled` at once; a running one stops at its next step."""
        return self._json("POST", f"/api/jobs/{job_id}/cancel")

    def retry_job(self, job_id: str) -> t.Job:
        """A new job with the same request as one that ended (failed, cancelled)."""
        return self._json("POST", f"/api/jobs/{job_id}/retry")

    def follow_job(self, job_id: str, timeout: float | None = None, *, use_socketio: bool = True) -> Iterator[t.Job]:
        """Every new state of the job, the first as it is now, the last terminal. Events come over Socket.IO
        when it connects; the job is polled every `poll_interval` seconds regardless, so a lost event costs
        one interval. TimeoutError after `timeout` seconds."""
        events: queue.Queue = queue.Queue()
        sio = self._subscribe({"job": job_id}, lambda d: events.put(d) if d.get("id") == job_id else None) \
            if use_socketio else None
        self.waited_with = "socketio" if sio else "polling"
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            job = self.job(job_id)  # read after joining, so no event can fall between the two
            yield job
            next_poll = time.monotonic() + self.poll_interval
            while job["status"] not in TERMINAL:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:g}s")
                wake = next_poll if deadline is None else min(next_poll, deadline)
                try:
                    new = events.get(timeout=max(0.0, wake - now))
                except queue.Empty:
                    next_poll = time.monotonic() + self.poll_interval
                    try:
                        new = self.job(job_id)
                    except Unreachable:  # the API restarting: keep waiting
                        continue
                if (new.get("updated_at") or "") < (job.get("updated_at") or "") and new["status"] not in TERMINAL:
                    continue  # an event older than what was read
                if _state(new) != _state(job):
                    job = new
                    yield job
        finally:
            if sio is not None:
                with contextlib.suppress(Exception):
                    sio.disconnect()

    def wait_job(self, job_id: str, timeout: float = 3600, *, progress: bool = False, use_socketio: bool = True,
                 on_event: Callable[[t.Job], None] | None = None, label: str | None = None) -> t.Job:
        """Block until the job ends and return its JSON (whatever its status). `on_event` gets every state;
        `progress` draws a bar on stderr."""
        bar = None
        job: t.Job = {}
        try:
            for job in self.follow_job(job_id, timeout, use_socketio=use_socketio):
                if on_event is not None:
                    on_event(job)
                if progress:
                    if bar is None:
                        bar = tqdm(total=100, desc=label or job.get("kind", "job"), unit="%", file=sys.stderr,
                                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}",
                                   mininterval=0.1)
                    bar.n = round(100 * (1.0 if job["status"] == "succeeded" else job.get("progress") or 0), 1)
                    bar.set_postfix_str(f"{job['status']} {job.get('message') or ''}"[:60], refresh=False)
                    bar.refresh()
        finally:
            if bar is not None:
                bar.close()
        return job

    def watch(self, project_id: int | None = None, *, use_socketio: bool = True) -> Iterator[t.Job]:
        """Every change of the jobs of a project (or all of yours) from now on, forever: Socket.IO events
        plus a poll of the newest 50 every `poll_interval` (nothing is missed while the socket is down)."""
        events: queue.Queue = queue.Queue()
        room = {"project": project_id} if project_id is not None else None
        sio = self._subscribe(room, events.put) if use_socketio and room else None
        self.waited_with = "socketio" if sio else "polling"
        seen: dict[str, tuple] = {j["id"]: _state(j) for j in self.jobs(project_id, limit=50)}
        next_poll = time.monotonic() + self.poll_interval
        try:
            while True:
                try:
                    batch = [events.get(timeout=max(0.0, next_poll - time.monotonic()))]
                except queue.Empty:
                    next_poll = time.monotonic() + self.poll_interval
                    try:
                        batch = list(reversed(list(self.jobs(project_id, limit=50))))
                    except Unreachable:
                        continue
                for job in batch:
                    if isinstance(job, dict) and "id" in job and seen.get(job["id"]) != _state(job):
                        seen[job["id"]] = _state(job)
                        yield job
        finally:
            if sio is not None:
                with contextlib.suppress(Exception):
                    sio.disconnect()

    def _subscribe(self, room: dict, put):
        """A Socket.IO client in `room`, or None when it cannot connect or join."""
        import socketio

        sio = socketio.Client(reconnection=False, handle_sigint=False)
        sio.on("job", lambda data: put(data) if isinstance(data, dict) else None)
        try:
            sio.connect(self.socketio_url, auth={"token": self.token}, transports=["websocket"],
                        wait_timeout=min(10, self.timeout))
            answer = sio.call("join", room, timeout=min(10, self.timeout))
            if isinstance(answer, dict) and answer.get("ok"):
                return sio
        except Exception:  # no socket at all is fine: polling does the job
            pass
        with contextlib.suppress(Exception):
            sio.disconnect()
        return None


def _state(job: dict) -> tuple:
    return (job.get("status"), job.get("progress"), job.get("message"), job.get("updated_at"),
            json.dumps(job.get("details"), sort_keys=True, default=str))
