"""The OpenAPI document matches the routes, both ways."""

from __future__ import annotations

import re


def _rules(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if (rule.rule.startswith("/api/") or rule.rule == "/metrics") and rule.rule != "/api/openapi.json":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            out |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return out


def test_document_lists_exactly_the_routes(app, alice, anonymous):
    assert anonymous.get("/api/openapi.json").status_code == 401
    doc = alice.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops if method != "parameters"}
    assert documented == _rules(app)


def test_document_states_auth_and_bodies(alice):
    doc = alice.get("/api/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["security"] == [{"bearer": []}]
    assert doc["paths"]["/api/health"]["get"]["security"] == []
    body = doc["paths"]["/api/projects"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert schema["required"] == ["name"] and schema["additionalProperties"] is False
    assert "202" in doc["paths"]["/api/jobs"]["post"]["responses"]
