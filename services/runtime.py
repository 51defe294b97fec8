"""Per-process handles to the catalog, Redis, blobs and the event bus.

Built lazily (nothing connects at import) and reset after a prefork worker forks, so children never
share a parent's database or Redis sockets.
"""

from __future__ import annotations

import threading

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store.blobs import BlobStore, LocalBlobStore
from store.db import make_engine, make_session_factory
from store.keys import RedisKeys
from store.settings import Settings
from services.events import Events


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = RedisKeys(settings.key_prefix)
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._redis: redis.Redis | None = None
        self._redis_raw: redis.Redis | None = None
        self._blobs: BlobStore | None = None
        self._events: Events | None = None

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self.settings.ensure_dirs()
                self._engine = make_engine(self.settings.sqlalchemy_url)
            return self._engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._sessions = make_session_factory(self.engine)
        return self._sessions

    @property
    def redis(self) -> redis.Redis:
        with self._lock:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
            return self._redis

    @property
    def redis_raw(self) -> redis.Redis:
        """Bytes in, bytes out (images and tensors passed between pipeline stages)."""
        with self._lock:
            if self._redis_raw is None:
                self._redis_raw = redis.Redis.from_url(self.settings.redis_url)
            return self._redis_raw

    @property
    def blobs(self) -> BlobStore:
        with self._lock:
            if self._blobs is None:
                self._blobs = LocalBlobStore(self.settings.blob_dir)
            return self._blobs

    @property
    def events(self) -> Events:
        with self._lock:
            if self._events is None:
                self._events = Events(self.settings.redis_url, self.keys.socketio_channel)
            return self._events

    def after_fork(self) -> None:
        """Drop inherited connections; the child opens its own on first use."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._redis = self._redis_raw = None
            self._events = None

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
                self._sessions = None
            for client in (self._redis, self._redis_raw):
                if client is not None:
                    client.close()
            self._redis = self._redis_raw = None
