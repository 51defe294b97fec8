"""Real processes for tests: Celery worker pools and the gunicorn API server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from store.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def stop_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group, SIGKILL it if it has not exited within `timeout`."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process these very settings (every field, as LOOPLINE_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"LOOPLINE_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    env.update(LOOPLINE_DATABASE_URL=settings.sqlalchemy_url, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Worker:
    """`loopline worker <queue>` as a subprocess, with the test job kind included."""

    def __init__(self, settings: Settings, queue: str, log_dir: Path, *, env: dict | None = None):
        self.queue = queue
        self.name = f"{queue}-{uuid.uuid4().hex[:6]}"  # unique: the tests wait for this very node
        self.log = log_dir / f"worker-{self.name}.log"
        cmd = [sys.executable, "-m", "api.cli", "worker", queue, "-c", "1", "-I", "tests.support.jobs",
               "--loglevel", "INFO", "--name", self.name]
        self.hostname = f"{self.name}@{socket.gethostname()}"
        env = settings_env(settings, **(env or {}))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole pool (parent and children), as a crash or an OOM kill would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        stop_group(self.proc)


def wait_for_workers(celery_app, workers: list[Worker], timeout: float = 90) -> dict:
    """Block until each of these worker nodes answers and consumes its queue; return {node: [queues]}."""
    deadline = time.monotonic() + timeout
    seen: dict = {}
    while time.monotonic() < deadline:
        replies = celery_app.control.inspect(timeout=1.0).active_queues() or {}
        seen = {w: [q["name"] for q in qs] for w, qs in replies.items()}
        if all(w.queue in seen.get(w.hostname, []) for w in workers):
            return seen
        for w in workers:
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker {w.name} exited: {w.log.read_text()[-2000:]}")
        time.sleep(0.3)
    raise TimeoutError(f"workers {[w.hostname for w in workers]} did not come up; saw {seen}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The API under gunicorn's threaded worker, exactly as `loopline serve` runs it."""

    def __init__(self, settings: Settings, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / "server.log"
        cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port), "--threads", "32"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=settings_env(settings), stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API server exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:  # not up yet, or too busy to answer in time
                pass
            time.sleep(0.2)
        raise TimeoutError("API server did not come up")

    def stop(self) -> None:
        stop_group(self.proc)
