"""Scratch folders of jobs under the work folder: one per delivery, and the ones a killed delivery of the
same job left behind are removed when the next one starts. A folder made for a job carries the job's id
in its name (`<prefix><job id>.<random>`), so the collector (`services/collector.py`) removes the folders of
jobs that ended or left the catalog without waiting for another delivery."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

_JOB = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.[^.]+$")


def fresh_scratch(root: Path, prefix: str, job_id: str | None = None) -> Path:
    """A new empty folder `<root>/<prefix><job id>.<random>`, after removing older `<prefix>*` folders."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{job_id}." if job_id else prefix, dir=root))


def scratch_job(name: str) -> str | None:
    """The id of the job a scratch folder was made for, from its name (None: made without one)."""
    match = _JOB.search(name)
    return match.group(1) if match else None
