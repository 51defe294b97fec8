"""One build per dataset key, whatever another process does between a request's reads and writes.

Each test stages the other process at an exact moment: right after the request, holding the key's lock, has
read the catalog (a SQLAlchemy cursor event on the request's own engine), another connection publishes the
build, makes the row, or restarts it. Whatever it did, exactly one build job exists for the key."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event, text

from handlers.registry import default_registry
from store.schema import Dataset, Job, LabelMap
from tests.support.catalog import labelled_project
from services.datasets import define, request_dataset


@pytest.fixture()
def pets(isolated):
    iso, runtime, celery, _ = isolated
    pid, uid, lm = labelled_project(iso, runtime, 2)
    with runtime.sessions() as session:
        definition = define(session, project_id=pid, name="once", handler=default_registry().get("detection@1"),
                            config={}, label_map=session.get(LabelMap, lm))
    return runtime, celery, definition, uid


def after_locked_read(runtime, key: str, meanwhile):
    """Run `meanwhile(conn)` on another connection, once, right after the first read of `datasets` that the
    request makes while holding the key's lock. Returns a list that holds True once it ran."""
    fired: list[bool] = []
    lock = runtime.keys.dataset_lock(key)

    def hook(conn, cursor, statement, params, context, executemany):
        if fired or not statement.lstrip().upper().startswith("SELECT") or "FROM datasets" not in statement:
            return
        if not runtime.redis.exists(lock):
            return
        fired.append(True)
        with runtime.engine.connect() as other:
            meanwhile(other)
            other.commit()

    event.listen(runtime.engine, "after_cursor_execute", hook)
    return fired, lambda: event.remove(runtime.engine, "after_cursor_execute", hook)


def request_meanwhile(runtime, celery, definition, uid, meanwhile):
    """Request the dataset while `meanwhile` runs at the staged moment; (whether it ran, the answer)."""
    fired, remove = after_locked_read(runtime, definition.key, meanwhile)
    try:
        with runtime.sessions() as session:
            answer = request_dataset(celery, runtime, session, definition, uid)
            session.commit()
    finally:
        remove()
    return fired, answer


def _insert_build_job(conn, job_id: str) -> None:
    """Another process's queued build job, written as that process would."""
    conn.execute(text("INSERT INTO jobs (id, kind, queue, status, progress, message, details, params, attempts, "
                      "cancel_requested, sends, created_at, updated_at) VALUES (:j, 'dataset.build', "
                      "'augmentation', 'queued', 0, 'queued', '{}', '{}', 0, false, 1, :now, :now)"),
                 {"j": job_id, "now": "2026-01-01 00:00:00"})


def _build_jobs(runtime) -> list[Job]:
    with runtime.sessions() as session:
        return session.query(Job).filter_by(kind="dataset.build").all()


def test_a_build_that_publishes_between_the_reads_is_not_started_again(pets):
    """The build publishes (row ready, job succeeded) right after the request read the row as building: the
    request joins the build it read, and no second build starts."""
    runtime, celery, definition, uid = pets
    with runtime.sessions() as session:
        first = request_dataset(celery, runtime, session, definition, uid)
        session.commit()
    build_job = first.job.id

    def publish(conn):
        conn.execute(text("UPDATE datasets SET status = 'ready', blob_key = 'b', sha256 = 's' WHERE key = :k"),
                     {"k": definition.key})
        conn.execute(text("UPDATE jobs SET status = 'succeeded' WHERE id = :j"), {"j": build_job})

    fired, answer = request_meanwhile(runtime, celery, definition, uid, publish)
    assert fired, "the staged moment never came"
    assert not answer.hit and answer.job.id == build_job  # it joined the build it saw running
    assert [j.id for j in _build_jobs(runtime)] == [build_job]
    with runtime.sessions() as session:
        row = session.query(Dataset).filter_by(key=definition.key).one()
        assert (row.status.value, row.job_id) == ("ready", build_job)  # never re-pointed at a new build


def test_a_row_another_process_made_meanwhile_is_joined(pets):
    """Nobody had the key when the request read; another process made the row and its build job before the
    request's insert: the insert collides, the request reads again and joins that build."""
    runtime, celery, definition, uid = pets
    other_job = str(uuid.uuid4())

    def make_row(conn):
        _insert_build_job(conn, other_job)
        conn.execute(text("INSERT INTO datasets (key, project_id, name, handler, handler_version, config, subset, "
                          "data_revision, status, job_id, size_bytes, manifest, hits, downloads, bytes_served, "
                          "created_at, last_access_at) VALUES (:k, :p, 'once', 'detection', 1, '{}', 'all', :r, "
                          "'building', :j, 0, '{}', 0, 0, 0, :now, :now)"),
                     {"k": definition.key, "p": definition.project_id, "r": definition.data_revision,
                      "j": other_job, "now": "2026-01-01 00:00:00"})

    fired, answer = request_meanwhile(runtime, celery, definition, uid, make_row)
    assert fired
    assert not answer.hit and answer.job.id == other_job
    assert [j.id for j in _build_jobs(runtime)] == [other_job]


def test_a_failed_build_is_restarted_once_when_two_requests_race(pets):
    """The build failed; another request restarts it right after this one read the failed row: this one's
    conditional restart finds the row changed, reads again and joins the other's new build."""
    runtime, celery, definition, uid = pets
    with runtime.sessions() as session:
        first = request_dataset(celery, runtime, session, definition, uid)
        session.commit()
    with runtime.engine.begin() as conn:  # the build failed and was settled
        conn.execute(text("UPDATE jobs SET status = 'failed' WHERE id = :j"), {"j": first.job.id})
        conn.execute(text("UPDATE datasets SET status = 'failed', error = 'boom' WHERE key = :k"), {"k": definition.key})
    other_job = str(uuid.uuid4())

    def restart(conn):
        _insert_build_job(conn, other_job)
        conn.execute(text("UPDATE datasets SET status = 'building', job_id = :j, error = NULL WHERE key = :k"),
                     {"j": other_job, "k": definition.key})

    fired, answer = request_meanwhile(runtime, celery, definition, uid, restart)
    assert fired
    assert not answer.hit and answer.job.id == other_job
    assert sorted(j.id for j in _build_jobs(runtime)) == sorted([first.job.id, other_job])
