"""Scratch folders of jobs under the work folder: one per delivery, and the ones a killed delivery of the
same job left behind are removed when the next one starts."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def fresh_scratch(root: Path, prefix: str) -> Path:
    """A new empty folder `<root>/<prefix><random>`, after removing older `<prefix>*` folders."""
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
