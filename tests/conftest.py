"""Fixtures over the real local services: Redis (a test database number), a fresh catalog (SQLite by
default, PostgreSQL when LOOPLINE_TEST_DATABASE_URL points at one), real Celery worker pools and the
API under gunicorn. Nothing that runs on this machine is mocked."""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from sqlalchemy import text

from store import migrate
from store.accounts import create_user, issue_token
from store.db import make_engine
from store.settings import Settings, load_settings
import tests.support.jobs  # noqa: F401 - registers the test job kind in this process too
from tests.support.api import ApiClient
from tests.support.procs import Server, Worker, wait_for_workers
from workers.celery_app import create_celery
from services.runtime import Runtime

pytest_plugins = ["tests.support.modeltree"]  # the labelled project with a suggest@1 dataset

REDIS_URL = os.environ.get("LOOPLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ISOLATED_REDIS_URL = os.environ.get("LOOPLINE_TEST_ISOLATED_REDIS_URL", "redis://127.0.0.1:6379/13")
DATABASE_URL = os.environ.get("LOOPLINE_TEST_DATABASE_URL")  # None: a SQLite file in a temp folder
QUEUES = ("inference", "augmentation", "training", "deployment")


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return load_settings(
        data_dir=data_dir, database_url=DATABASE_URL, redis_url=REDIS_URL, key_prefix="lltest",
        heartbeat_interval=0.5, heartbeat_ttl=3, progress_write_interval=0.2, progress_emit_interval=0.0,
        max_image_bytes=1_000_000, max_image_pixels=16_000_000, fetch_timeout=5,
        fetch_allow_networks=["127.0.0.2/32"],  # the tests' image server; 127.0.0.1 stays refused
    )


@pytest.fixture(scope="session")
def redis_client(settings) -> redis.Redis:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    client.flushdb()  # the test database number only
    return client


@pytest.fixture(scope="session")
def catalog(settings, redis_client):
    """A migrated, empty catalog for the session."""
    settings.ensure_dirs()
    if settings.sqlalchemy_url.startswith("postgresql"):
        migrate.downgrade(settings.sqlalchemy_url, "base")
    migrate.upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app(settings, catalog):
    from api import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
def runtime(app):
    return app.extensions["loopline.runtime"]


@pytest.fixture(scope="session")
def celery_app(app):
    return app.extensions["celery"]


@pytest.fixture(scope="session")
def tokens(runtime) -> dict[str, str]:
    """alice and bob are ordinary users; root is a superuser."""
    out = {}
    with runtime.sessions() as session:
        for name, superuser in (("alice", False), ("bob", False), ("carol", False), ("root", True)):
            out[name] = issue_token(session, create_user(session, name, superuser=superuser))
        session.commit()
    return out


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def alice(client, tokens):
    return ApiClient(client, tokens["alice"])


@pytest.fixture()
def bob(client, tokens):
    return ApiClient(client, tokens["bob"])


@pytest.fixture()
def carol(client, tokens):
    return ApiClient(client, tokens["carol"])


@pytest.fixture()
def anonymous(client):
    return ApiClient(client, None)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def project(alice, bob, carol):
    """A project of alice's (admin) with bob as annotator and carol as viewer."""
    res = alice.post("/api/projects", json={"name": unique("project")})
    assert res.status_code == 201, res.get_json()
    pid = res.get_json()["id"]
    assert alice.put(f"/api/projects/{pid}/members/bob", json={"role": "annotator"}).status_code == 200
    assert alice.put(f"/api/projects/{pid}/members/carol", json={"role": "viewer"}).status_code == 200
    return res.get_json()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def workers(settings, catalog, celery_app, log_dir):
    """One real worker pool per queue, started with `loopline worker <queue>`."""
    pools = [Worker(settings, q, log_dir) for q in QUEUES]
    try:
        wait_for_workers(celery_app, pools)
        yield {w.queue: w for w in pools}
    finally:
        for w in pools:
            w.stop()


@pytest.fixture(scope="session")
def server(settings, catalog, tokens, log_dir):
    srv = Server(settings, log_dir)
    yield srv
    srv.stop()


@pytest.fixture()
def sql(catalog):
    """Run a SQL statement against the catalog directly (to check what was or was not written)."""

    def run(statement: str, **params):
        with catalog.connect() as conn:
            return conn.execute(text(statement), params).all()

    return run


@pytest.fixture()
def isolated(settings, tmp_path):
    """Its own Redis database and catalog, so only the workers started here consume the queues
    (for tests that kill workers). Yields (settings, runtime, celery, start(queue, **env))."""
    iso = settings.model_copy(update={"data_dir": tmp_path, "database_url": None, "redis_url": ISOLATED_REDIS_URL})
    iso.ensure_dirs()
    redis.Redis.from_url(iso.redis_url).flushdb()
    migrate.upgrade(iso.sqlalchemy_url)
    runtime = Runtime(iso)
    celery = create_celery(iso, include_tasks=False)
    started: list[Worker] = []

    def start(queue: str, **env) -> Worker:
        w = Worker(iso, queue, tmp_path, env=env)
        started.append(w)
        wait_for_workers(celery, [w])
        return w

    yield iso, runtime, celery, start
    for w in started:
        w.stop()
    runtime.close()
