"""The throwaway setting the benchmarks run in: a temporary folder with a fresh SQLite catalog, one
Redis database of its own (flushed at start and end; no other is touched), and a cleanup stack for what
the benchmark starts (workers, servers, runtimes). Ctrl-C and SIGTERM end a run through that cleanup."""

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

from store import migrate
from store.settings import Settings, load_settings


@dataclass
class Run:
    tmp: Path
    settings: Settings
    cleanup: ExitStack  # register what to stop: cleanup.callback(worker.stop)


@contextmanager
def throwaway(redis_url: str, name: str) -> Iterator[Run]:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started in the background
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # and SIGTERM: both run the cleanup below
    tmp = Path(tempfile.mkdtemp(prefix=f"loopline-{name}-bench-"))
    try:
        with ExitStack() as cleanup:
            settings = load_settings(data_dir=tmp / "data", redis_url=redis_url,
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
