"""Keep Python's cyclic garbage collector off the start-up heap of long-running processes.

A full (generation 2) collection walks every tracked object. An API or inference process holds a few
hundred thousand of them from start-up alone (Flask, SQLAlchemy, Celery, onnxruntime bindings), so each full
collection stopped the process — and, on SQLite, any writer queued behind it — for 50–260 ms (measured
under 16 annotators; those pauses were the suggestion latency's p99). Objects made while starting live as
long as the process: `gc.freeze()` moves them to a generation the collector never scans, and what
requests allocate is still collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once the process has loaded what it serves with (after any fork: a frozen parent's objects
    stay frozen in a child, and are shared copy-on-write instead of touched by the child's collections)."""
    gc.collect()
    gc.freeze()
