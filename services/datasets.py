"""The dataset cache: one build per definition, however many ask.

A dataset's key is the SHA-256 of the canonical JSON of its definition: project, dataset name, handler
and version, the config with every default filled in, the label map and subset, and the data revision
of what they select. `{}` and a config that spells out the defaults give the same key; any change to
the selected boxes gives another.

`request_dataset` answers from the catalog when the key is built (a hit), joins the running build when
there is one, and otherwise creates the row and the build job under a short Redis lock keyed by the
dataset key. The catalog is the truth: the lock only keeps concurrent requests from racing to create
the row, and a build that did not succeed leaves its row `failed` (`services.settle`), which the next
request builds again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy import delete, select, update

from handlers.registry import Handler
from store.schema import Checkpoint, CheckpointStatus, Dataset, DatasetStatus, Job, JobStatus, LabelMap
from store.schema.base import utcnow
from store.selection import fingerprint
from services import jobs as job_service
from services.outbox import send_after_commit

log = logging.getLogger(__name__)

LOCK_SECONDS = 30
RACE_ATTEMPTS = 10


@dataclass(frozen=True)
class Definition:
    project_id: int
    name: str
    handler: Handler
    config: dict  # validated, defaults filled
    label_map: LabelMap
    subset: str
    data_revision: str
    images: int  # selected images; part of the revision, so not of the key

    def canonical(self) -> dict:
        return {
            "project": self.project_id, "name": self.name, "handler": self.handler.name,
            "version": self.handler.version, "config": self.config, "label_map": self.label_map.id,
            "subset": self.subset, "data_revision": self.data_revision,
        }

    @property
    def key(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


def define(session, *, project_id: int, name: str, handler: Handler, config: dict, label_map: LabelMap,
           subset: str = "all") -> Definition:
    """The definition of a request; `config` is validated by the handler (ConfigError lists bad keys)."""
    selection = fingerprint(session, label_map, subset)
    return Definition(project_id, name, handler, handler.config(config), label_map, subset, selection.revision,
                      selection.images)


@dataclass
class Answer:
    dataset: Dataset
    job: Job | None  # the build job when the dataset is not ready yet
    hit: bool


def request_dataset(celery, runtime, session, definition: Definition, user_id: int | None) -> Answer:
    """The ready dataset (a hit), the build already running for this key, or a new build, in the caller's
    transaction; a new build's message is sent once it commits."""
    found = _lookup(session, definition.key)
    if found is not None and found.status is DatasetStatus.ready:
        return Answer(_touch(session, found), None, hit=True)
    with _build_lock(runtime, definition.key):
        return _decide(celery, runtime, session, definition, user_id)


@contextmanager
def _build_lock(runtime, key: str):
    """Concurrent identical requests take turns, so they do not all race to create the row. Only a
    shortcut: the decision below is right without it (one unique row per key, conditional restarts), so
    while Redis is unreachable requests go on without the lock."""
    try:
        lock = runtime.redis.lock(runtime.keys.dataset_lock(key), timeout=LOCK_SECONDS,
                                  blocking_timeout=LOCK_SECONDS)
        acquired = lock.acquire()
    except RedisError:
        log.warning("dataset lock unavailable (Redis unreachable); deciding from the catalog alone")
        yield
        return
    try:
        yield
    finally:
        if acquired:
            try:
                lock.release()
            except RedisError:  # expired or Redis gone: the lock has gone by itself
                pass


def _decide(celery, runtime, session, definition: Definition, user_id: int | None) -> Answer:
    """Decide from one statement that reads the row with its job's status (a build that publishes between
    two reads can never look failed), and change the row only by statements that re-check what was read:
    an INSERT under the key's unique constraint, or an UPDATE of the row naming the job that was read. A
    lost race re-reads and decides again."""
    for _ in range(RACE_ATTEMPTS):
        session.expire_all()
        row = session.execute(
            select(Dataset, Job.status).outerjoin(Job, Job.id == Dataset.job_id).where(Dataset.key == definition.key)
        ).first()
        if row is None:
            answer = _start_build(celery, runtime, session, definition, None, user_id)
        else:
            dataset, job_status = row
            if dataset.status is DatasetStatus.ready:
                return Answer(_touch(session, dataset), None, hit=True)
            if dataset.status is DatasetStatus.building and job_status in (JobStatus.queued, JobStatus.running):
                return Answer(dataset, session.get(Job, dataset.job_id), hit=False)  # join the running build
            answer = _start_build(celery, runtime, session, definition, dataset, user_id)
        if answer is not None:
            return answer
    raise RuntimeError(f"dataset {definition.key}: lost {RACE_ATTEMPTS} races in a row to concurrent requests")


def _lookup(session, key: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.key == key))


def _touch(session, dataset: Dataset) -> Dataset:
    session.execute(update(Dataset).where(Dataset.id == dataset.id)
                    .values(hits=Dataset.hits + 1, last_access_at=utcnow()))
    session.refresh(dataset)
    return dataset


def _start_build(celery, runtime, session, definition: Definition, row: Dataset | None, user_id) -> Answer | None:
    """A new row, or a restart of a row that is not ready and still names the job that was read; the row
    names its build job in the caller's transaction, with the job row. None when another request got there
    first: then nothing was written (an INSERT … ON CONFLICT DO NOTHING, a conditional UPDATE), so the
    caller's transaction goes on unharmed."""
    job_id = job_service.new_job_id()
    if row is None:
        now = utcnow()
        values = dict(
            key=definition.key, project_id=definition.project_id, name=definition.name,
            handler=definition.handler.name, handler_version=definition.handler.version, config=definition.config,
            label_map_id=definition.label_map.id, subset=definition.subset, data_revision=definition.data_revision,
            status=DatasetStatus.building, job_id=job_id, size_bytes=0, manifest={}, hits=0, downloads=0,
            bytes_served=0, created_at=now, last_access_at=now,
        )
        insert = _insert_for(session)(Dataset).values(**values).on_conflict_do_nothing(index_elements=["key"])
        dataset_id = session.execute(insert.returning(Dataset.id)).scalar()
        if dataset_id is None:  # another request made the row meanwhile
            return None
    else:
        restarted = session.execute(
            update(Dataset).where(Dataset.id == row.id, Dataset.status != DatasetStatus.ready,
                                  _same(Dataset.job_id, row.job_id))
            .values(status=DatasetStatus.building, job_id=job_id, error=None)
        ).rowcount
        if not restarted:
            return None
        dataset_id = row.id
    job = job_service.create_job(session, "dataset.build", params={"dataset_id": dataset_id},
                                 project_id=definition.project_id, user_id=user_id, job_id=job_id)
    send_after_commit(celery, runtime, session, [job])
    session.flush()
    return Answer(session.get(Dataset, dataset_id, populate_existing=True), job, hit=False)


def _insert_for(session):
    """INSERT with ON CONFLICT for the catalog's database (SQLite and PostgreSQL both have it)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _same(column, value):
    return column.is_(None) if value is None else column == value


def evict(runtime, quota_bytes: int, keep: frozenset[str] = frozenset()) -> list[str]:
    """Delete ready datasets, least recently used first, until their total size fits `quota_bytes`.
    Only rows go: the blob collector deletes each zip once no row names it (so the catalog never names a
    missing file); datasets being trained on are kept. One eviction runs at a time, in a transaction of its
    own committed under that lock, so the next one counts what this one left. Returns the evicted keys."""
    evicted: list[str] = []
    with runtime.redis.lock(runtime.keys.eviction_lock, timeout=120, blocking_timeout=120), \
            runtime.sessions() as session:
        ready = session.execute(
            select(Dataset.id, Dataset.key, Dataset.blob_key, Dataset.size_bytes,
                   Dataset.id.in_(in_training()).label("in_training"))
            .where(Dataset.status == DatasetStatus.ready).order_by(Dataset.last_access_at, Dataset.id)
        ).all()
        total = sum(r.size_bytes for r in ready)
        for row in ready:
            if total <= quota_bytes:
                break
            if row.key in keep or row.in_training:
                continue
            session.execute(delete(Dataset).where(Dataset.id == row.id))
            total -= row.size_bytes
            evicted.append(row.key)
        session.commit()
    return evicted


def in_training():
    """Ids of datasets a checkpoint is training on now: they stay in the cache until the run ends."""
    return select(Checkpoint.dataset_id).where(Checkpoint.status == CheckpointStatus.training,
                                               Checkpoint.dataset_id.is_not(None))


def handler_ref(d: Dataset) -> str:
    """The handler that built `d` as requests name it: `name@version`."""
    return f"{d.handler}@{d.handler_version}"
