"""The throwaway setting the benchmarks run in: a temporary folder with a fresh SQLite catalog (or, given a
PostgreSQL server URL, a fresh database made on that server and dropped at the end), one Redis database of
its own (flushed at start and end; no other is touched), and a cleanup stack for what the benchmark starts
(workers, servers, runtimes). Ctrl-C and SIGTERM end a run through that cleanup."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import redis
from sqlalchemy import create_engine, make_url, text

from store import migrate
from store.settings import Settings, load_settings


@dataclass
class Run:
    tmp: Path
    settings: Settings
    cleanup: ExitStack  # register what to stop: cleanup.callback(worker.stop)


@contextmanager
def throwaway(redis_url: str, name: str, postgresql: str | None = None) -> Iterator[Run]:
    """`postgresql`: a server URL (postgresql://user@host/any-db) to make the catalog on instead of SQLite."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started in the background
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # and SIGTERM: both run the cleanup below
    tmp = Path(tempfile.mkdtemp(prefix=f"loopline-{name}-bench-"))
    try:
        with ExitStack() as cleanup:
            database_url = cleanup.enter_context(_fresh_database(postgresql, name)) if postgresql else None
            settings = load_settings(data_dir=tmp / "data", redis_url=redis_url, database_url=database_url,
                                     key_prefix=f"llbench{uuid.uuid4().hex[:6]}")
            settings.ensure_dirs()
            redis.Redis.from_url(redis_url).flushdb()  # this benchmark's database only
            migrate.upgrade(settings.sqlalchemy_url)
            yield Run(tmp, settings, cleanup)
    except KeyboardInterrupt:
        raise SystemExit("interrupted: stopped what was started and removed the temporary files") from None
    finally:
        redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _fresh_database(server_url: str, name: str) -> Iterator[str]:
    """CREATE DATABASE loopline_<name>_bench_<hex> on the server; DROP it (WITH FORCE) at the end."""
    server = make_url(server_url)
    database = f"loopline_{name}_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield server.set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
