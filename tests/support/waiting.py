"""Poll until something holds, with a deadline, for tests and benchmarks that wait on other processes."""

from __future__ import annotations

import time


def wait_until(check, timeout: float, what: str, every: float = 0.02):
    """`check()`'s first truthy value; AssertionError naming `what` when none came within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s: {what}"
        time.sleep(every)
    return value
