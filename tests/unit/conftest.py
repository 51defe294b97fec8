"""Unit tests need no service: no Redis, no database server, no worker, no API server. A unit test that asks
for a fixture that reaches one fails at collection, so the layer stays fast and runs anywhere."""

from __future__ import annotations

import pytest

SERVICE_FIXTURES = {
    "redis_client", "catalog", "app", "runtime", "celery_app", "tokens", "client", "alice", "bob", "carol",
    "anonymous", "project", "workers", "server", "sql", "isolated", "pets", "labelled_pets", "scenes", "stack",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/unit/" not in str(item.fspath).replace("\\", "/"):
            continue
        used = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if used:
            raise pytest.UsageError(f"{item.nodeid} is a unit test but uses {sorted(used)}: move it to tests/integration")
