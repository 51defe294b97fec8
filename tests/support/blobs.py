"""Blob ages for the collector's tests: a blob's age is its file's modification time (LocalBlobStore)."""

from __future__ import annotations

import os
import time


def age(blobs, *keys: str, seconds: float = 7200) -> None:
    """Make the blobs look `seconds` old (older than the default grace of an hour)."""
    then = time.time() - seconds
    for key in keys:
        os.utime(blobs.path(key), (then, then))


def age_tree(path, seconds: float = 7200) -> None:
    """Make a folder and everything in it look `seconds` old."""
    then = time.time() - seconds
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            os.utime(os.path.join(root, name), (then, then))
    os.utime(path, (then, then))
