"""gunicorn settings read with `--config python:api.gunicorn_conf`: one Prometheus multiprocess folder for
all API processes of one server, emptied when the server starts (so counters start from zero)."""

from __future__ import annotations

import os
import shutil
import tempfile


def on_starting(server) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="loopline-metrics-")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # the workers, forked after this, inherit it


def post_worker_init(worker) -> None:
    """The app is loaded in this worker process: keep the collector off it (see workers.heap)."""
    from workers.heap import freeze_startup_heap

    freeze_startup_heap()
