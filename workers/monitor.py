"""Each worker says who it is, in Redis, for the dashboard's queue page.

A broadcast (`celery inspect`) cannot be answered by a solo pool while it runs a task, and the training
and deployment pools are solo; so every worker instead keeps an entry of its own fresh in one Redis hash
from a thread of its main process: its queues, pool, concurrency and versions. What it runs now is in the
catalog (the running jobs name their worker). An entry not refreshed within `services.queue_status.PRESENCE_TTL` is a worker gone.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import threading
import time
from importlib import metadata

import redis
from celery import signals

from services.queue_status import PRESENCE_TTL
from store.keys import RedisKeys

log = logging.getLogger(__name__)

PRESENCE_INTERVAL = PRESENCE_TTL / 3  # two missed refreshes still read as alive
_PACKAGES = ("loopline", "celery", "kombu", "redis", "sqlalchemy", "flask-socketio", "onnxruntime", "tensorflow-cpu",
             "tensorflow")
_POOL_NAMES = {"thread": "threads"}  # as the queue table names them
_stop = threading.Event()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def describe(consumer) -> dict:
    pool = consumer.pool
    module = type(pool).__module__.rsplit(".", 1)[-1]
    limit = (getattr(pool, "info", None) or {}).get("max-concurrency") or getattr(pool, "limit", None) or 1
    return {"name": consumer.hostname, "queues": sorted(q.name for q in consumer.task_consumer.queues),
            "pool": _POOL_NAMES.get(module, module), "concurrency": int(limit), "versions": versions(),
            "pid": os.getpid(), "started_at": time.time()}


def _announce_forever(client: redis.Redis, key: str, entry: dict) -> None:
    name = entry["name"]
    while not _stop.is_set():
        try:
            client.hset(key, name, json.dumps({**entry, "seen_at": time.time()}))
        except redis.RedisError:  # the broker is away; the worker is too, as far as anyone can tell
            pass
        _stop.wait(PRESENCE_INTERVAL)
    try:
        client.hdel(key, name)
    except redis.RedisError:
        pass


@signals.worker_ready.connect
def _start_announcing(sender=None, **_) -> None:
    settings = getattr(sender.app, "loopline_settings", None)
    if settings is None:
        return
    try:
        entry = describe(sender)
    except Exception:  # noqa: BLE001 - never keep a worker from starting over its self-description
        log.warning("could not describe this worker for the dashboard", exc_info=True)
        return
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    key = RedisKeys(settings.key_prefix).worker_presence
    threading.Thread(target=_announce_forever, args=(client, key, entry), name="loopline-presence",
                     daemon=True).start()


@signals.worker_shutdown.connect
def _stop_announcing(**_) -> None:
    _stop.set()
