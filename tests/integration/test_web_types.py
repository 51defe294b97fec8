"""The dashboard's API types (web/src/api/schema.d.ts) are generated from this app's OpenAPI document by
the openapi-typescript pinned in web/package-lock.json: a change of the API that the committed file does
not reflect fails here, so the TypeScript build sees every API change."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def _generator():
    spec = importlib.util.spec_from_file_location("web_openapi_types", WEB / "openapi_types.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _without_test_kinds(value, kinds: set[str]):
    """The document as the app has it outside the tests: tests/conftest.py registers job kinds of its own
    (tests/support/jobs.py), which the API's `kind` enums then list."""
    if isinstance(value, dict):
        return {k: _without_test_kinds(v, kinds) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_test_kinds(v, kinds) for v in value if not (isinstance(v, str) and v in kinds)]
    return value


def test_committed_api_types_are_current(app, alice):
    from services.registry import KINDS

    gen = _generator()
    if not gen.BIN.exists():
        pytest.fail(f"{gen.BIN} is missing: run `cd web && npm ci`")
    res = alice.get("/api/openapi.json")
    assert res.status_code == 200
    document = res.get_json()
    assert document == gen.document_of(app), "the generator reads another document than the API serves"
    test_kinds = {k for k in KINDS if k.startswith("test.")}
    assert test_kinds, "tests/support/jobs.py registers its kinds"
    expected = gen.typescript_for(_without_test_kinds(document, test_kinds))
    committed = gen.SCHEMA.read_text() if gen.SCHEMA.exists() else ""
    assert committed == expected, "web/src/api/schema.d.ts is stale: run `make web-types`"
