"""`loopline up`: the whole system on one machine, supervised in the foreground.

Redis is started if none answers at the configured local address; the catalog is migrated; an admin
token is kept in the data folder (mode 0600) and printed; then gunicorn (API + Socket.IO), one Celery
pool per queue and the reaper run until Ctrl-C. A process that dies is restarted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import click
import redis

from store.settings import Settings

ADMIN = "admin"


def default_web_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def gunicorn_argv(host: str, port: int, threads: int, workers: int | None = None) -> list[str]:
    return [
        "--worker-class", "gthread", "--workers", str(workers or default_web_workers()), "--threads", str(threads),
        "--bind", f"{host}:{port}", "--timeout", "120", "--graceful-timeout", "10",
        "--access-logfile", "-", "--error-logfile", "-", "--config", "python:api.gunicorn_conf", "api.wsgi:app",
    ]


def ensure_redis(settings: Settings) -> None:
    """Ping Redis; start a local one if the URL points at this machine and nothing answers."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    try:
        client.ping()
        _check_policy(client)
        return
    except redis.ConnectionError:
        pass
    url = urlparse(settings.redis_url)
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise click.ClickException(f"Redis at {settings.redis_url} does not answer")
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException("no Redis answers and redis-server is not installed (see README: install Redis first)")
    click.echo(f"starting redis-server on port {url.port or 6379}")
    subprocess.run(
        [binary, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(url.port or 6379), "--save", "",
         "--appendonly", "no", "--maxmemory-policy", "noeviction", "--dir", str(settings.data_dir),
         "--logfile", str(settings.data_dir / "redis.log")],
        check=True,
    )
    for _ in range(50):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.1)
    raise click.ClickException("redis-server did not come up; see " + str(settings.data_dir / "redis.log"))


def _check_policy(client: redis.Redis) -> None:
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:
        return  # CONFIG may be disabled on managed Redis
    if policy and policy != "noeviction":
        click.echo(f"warning: Redis maxmemory-policy is {policy}; the broker needs noeviction", err=True)


def admin_token(settings: Settings) -> str:
    """The local admin's token: kept in <data_dir>/admin.token, re-issued if it stopped working."""
    from sqlalchemy import select

    from store.accounts import caller_for_token, create_user, issue_token
    from store.db import make_engine, make_session_factory
    from store.schema import User

    path = settings.data_dir / "admin.token"
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with make_session_factory(engine)() as session:
            if path.exists():
                saved = path.read_text().strip()
                if caller_for_token(session, saved):
                    return saved
            admin = session.scalar(select(User).where(User.name == ADMIN)) or create_user(session, ADMIN, superuser=True)
            value = issue_token(session, admin, "local")
            session.commit()
    finally:
        engine.dispose()
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(value + "\n")
    os.chmod(path, 0o600)
    return value


class Supervisor:
    """Runs named commands, restarts one that dies (with backoff), stops them all on a signal."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.commands: dict[str, list[str]] = {}
        self.extra_env: dict[str, dict[str, str]] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}
        self.stopping = threading.Event()

    def add(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """`env`: variables for this command only, over the shared ones."""
        self.commands[name] = argv
        self.extra_env[name] = dict(env or {})

    def _start(self, name: str) -> None:
        self.procs[name] = subprocess.Popen(self.commands[name], env={**self.env, **self.extra_env[name]},
                                            start_new_session=True)
        self.started[name] = time.monotonic()

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C and `kill`, even if started with SIGINT ignored
            signal.signal(sig, lambda *_: self.stopping.set())
        for name in self.commands:
            self._start(name)
        restarts: dict[str, float] = {}
        try:
            while not self.stopping.wait(1.0):
                for name, proc in list(self.procs.items()):
                    if proc.poll() is not None:
                        ran = time.monotonic() - self.started[name]
                        delay = 1.0 if ran > 60 else min(30.0, restarts.get(name, 0.5) * 2)
                        restarts[name] = delay
                        click.echo(f"{name} exited with {proc.returncode}; restarting in {delay:.0f}s", err=True)
                        time.sleep(delay)
                        self._start(name)
        finally:
            self.stop()

    def stop(self) -> None:
        click.echo("stopping...")
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


FLOWER_PORT = 5555


def flower_argv(host: str, port: int) -> list[str]:
    """`celery` arguments for Flower on host:port, watching the pools through the Celery app's own broker
    (the pools send task events and every sender `task-sent`: workers/celery_app.py)."""
    return ["-A", "workers", "flower", f"--address={host}", f"--port={port}"]


def flower_env(open_api: bool) -> dict[str, str]:
    """Flower answers its HTTP API (`/api/*`) only to authenticated users unless told otherwise; loopline
    opens it only when asked (`--flower-open-api`), for scripts on this machine."""
    return {"FLOWER_UNAUTHENTICATED_API": "true"} if open_api else {}


def run_local(settings: Settings, *, host: str, port: int, concurrency: int | None, flower: bool = False,
              flower_port: int = FLOWER_PORT, flower_open_api: bool = False) -> None:
    from store import migrate
    from services.queues import Queue, worker_argv

    if flower:
        import importlib.util

        if importlib.util.find_spec("flower") is None:
            raise click.ClickException("--flower needs Flower: pip install flower==2.2.0 (the dev extra has it)")
    settings.ensure_dirs()
    ensure_redis(settings)
    migrate.upgrade(settings.sqlalchemy_url)
    value = admin_token(settings)
    env = {**os.environ, "LOOPLINE_DATA_DIR": str(settings.data_dir), "LOOPLINE_REDIS_URL": settings.redis_url,
           "LOOPLINE_DATABASE_URL": settings.sqlalchemy_url, "PYTHONUNBUFFERED": "1"}
    sup = Supervisor(env)
    sup.add("api", [sys.executable, "-m", "gunicorn", *gunicorn_argv(host, port, 64)])
    for queue in Queue:
        sup.add(f"worker-{queue.value}", [sys.executable, "-m", "celery", *worker_argv(queue, concurrency=concurrency)])
    sup.add("reaper", [sys.executable, "-m", "api.cli", "reaper"])
    if flower:
        sup.add("flower", [sys.executable, "-m", "celery", *flower_argv(host, flower_port)], flower_env(flower_open_api))
    base = f"http://{host}:{port}"
    watch = (f"  flower      : http://{host}:{flower_port}/"
             + ("   (its /api/* open without authentication: keep it on localhost)" if flower_open_api else "")
             + "\n") if flower else ""
    click.echo(
        f"\nloopline is starting at {base}\n"
        f"  data folder : {settings.data_dir}\n"
        f"  catalog     : {settings.sqlalchemy_url}\n"
        f"  redis       : {settings.redis_url}\n"
        f"  dashboard   : {base}/   (sign in with the admin token)\n"
        f"  admin token : {value}   (kept in {Path(settings.data_dir) / 'admin.token'})\n"
        f"  try         : curl -H 'Authorization: Bearer {value}' {base}/api/me\n"
        f"  API document: {base}/api/openapi.json\n"
        f"{watch}"
        f"  Ctrl-C stops everything.\n"
    )
    sup.run()
