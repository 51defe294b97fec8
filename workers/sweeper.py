"""The reaper's loop: reap dead runs, then dispatch the outbox, pass after pass, through any outage; every
`collect_interval` seconds a pass also runs the collector (`services.collector`).

When Redis or the catalog is unreachable a pass fails as a whole; the loop logs that once, backs off
(doubling, up to MAX_BACKOFF) and logs again when the services answer, instead of crash-looping.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from celery import Celery

from store.settings import Settings
from services.collector import collect_if_due
from services.outbox import dispatch
from services.reaper import reap
from services.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BACKOFF = 15.0  # a pass at least this often: jobs move again soon after the services are back


class Sweeper:
    def __init__(self, settings: Settings, celery: Celery, echo: Callable[[str], None] = log.info):
        self.runtime = Runtime(settings)
        self.celery = celery
        self.echo = echo
        self.failing_since: float | None = None

    def sweep(self) -> None:
        """One pass: raises when a service is unreachable."""
        report = reap(self.runtime)
        sent = dispatch(self.celery, self.runtime)
        if report.requeued or report.failed or sent["sent"] or sent["expired"]:
            self.echo(f"checked {report.checked} running, requeued {len(report.requeued)}, failed "
                      f"{len(report.failed)}; sent again {len(sent['sent'])}, expired {len(sent['expired'])}")
        try:  # every collect_interval: blobs, staging and scratch no row names (services.collector)
            collected = collect_if_due(self.runtime)
        except OSError as exc:  # a file it cannot remove must not stop the reaper
            self.echo(f"collector: {type(exc).__name__}: {exc}")
        else:
            if collected:
                self.echo(f"collector: {collected.summary()}")

    def run_forever(self, interval: float, stop: threading.Event | None = None) -> None:
        """Pass after pass until `stop` is set (never, for the `loopline reaper` process)."""
        stop = stop or threading.Event()
        backoff = interval
        while not stop.is_set():
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - an outage of Redis or the catalog: wait it out
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                    self.echo(f"reaper: services unreachable ({type(exc).__name__}: {exc}); backing off")
                backoff = min(MAX_BACKOFF, backoff * 2)
                stop.wait(backoff)
                continue
            if self.failing_since is not None:
                self.echo(f"reaper: services answer again after {time.monotonic() - self.failing_since:.0f} s")
                self.failing_since = None
            backoff = interval
            stop.wait(interval)

    def close(self) -> None:
        self.runtime.close()
