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


def test_committed_api_types_are_current(app, alice):
    gen = _generator()
    if not gen.BIN.exists():
        pytest.fail(f"{gen.BIN} is missing: run `cd web && npm ci`")
    res = alice.get("/api/openapi.json")
    assert res.status_code == 200
    document = res.get_json()
    assert document == gen.document_of(app), "the generator reads another document than the API serves"
    expected = gen.typescript_for(document)
    committed = gen.SCHEMA.read_text() if gen.SCHEMA.exists() else ""
    assert committed == expected, "web/src/api/schema.d.ts is stale: run `make web-types`"
