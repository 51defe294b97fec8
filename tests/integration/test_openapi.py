"""The OpenAPI document matches the routes, both ways."""

from __future__ import annotations

import re


def _rules(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if (rule.rule.startswith("/api/") or rule.rule == "/metrics") and rule.rule != "/api/openapi.json":
            path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
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


def _resolve(doc, schema):
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _inputs(doc):
    """(where, JSON schema) of every parameter and request body property, nested ones included."""
    stack = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            params = [*ops.get("parameters", []), *(op.get("parameters", []) if isinstance(op, dict) else [])]
            stack += [(f"{where} {p['name']}", p["schema"]) for p in params]
            if isinstance(op, dict):
                stack += [(f"{where} body", c["schema"]) for c in op.get("requestBody", {}).get("content", {}).values()]
    seen = set()
    while stack:
        where, schema = stack.pop()
        if "$ref" in schema:
            if schema["$ref"] in seen:
                continue
            seen.add(schema["$ref"])
            schema = _resolve(doc, schema)
        yield where, schema
        stack += [(f"{where}.{k}", v) for k, v in schema.get("properties", {}).items()]
        stack += [(f"{where}[]", schema["items"])] if "items" in schema else []
        stack += [(f"{where}|", s) for key in ("anyOf", "allOf", "oneOf") for s in schema.get(key, [])]
        if isinstance(schema.get("additionalProperties"), dict):
            stack.append((f"{where}.*", schema["additionalProperties"]))


def test_every_operation_declares_the_real_error_shape(alice):
    doc = alice.get("/api/openapi.json").get_json()
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    detail = _resolve(doc, error["properties"]["error"])
    assert set(detail["required"]) == {"status", "code", "message"} and "fields" in detail["properties"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method != "parameters":
                assert op["responses"]["default"] == {"$ref": "#/components/responses/DEFAULT_ERROR"}, (method, path)
    assert doc["components"]["responses"]["DEFAULT_ERROR"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    # and that is what an error is
    body = alice.get("/api/projects/0").get_json()
    assert set(body) == {"error"} and set(body["error"]) >= set(detail["required"])


def test_every_input_is_bounded(alice):
    """Integers are 64-bit at most (ids 32-bit: the catalog's INTEGER), strings have a length and refuse NUL."""
    doc = alice.get("/api/openapi.json").get_json()
    checked = 0
    for where, schema in _inputs(doc):
        if schema.get("type") == "integer":
            assert schema.get("minimum") is not None and schema.get("maximum", 2**63) <= 2**63 - 1, where
            checked += 1
        if schema.get("type") == "string" and schema.get("format") != "binary":
            fixed = "pattern" in schema and not re.search(r"[*+]|\{\d+,\}", schema["pattern"])  # ^[0-9a-f]{64}$
            assert "enum" in schema or "maxLength" in schema or fixed, where
            assert "enum" in schema or "pattern" in schema, where  # none lets NUL through
            checked += 1
    assert checked > 100
    param = doc["paths"]["/api/projects/{project_id}"]["parameters"][0]["schema"]
    assert param == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    body = _resolve(doc, doc["paths"]["/api/projects/{project_id}/label-maps"]["post"]["requestBody"]["content"][
        "application/json"]["schema"])
    assert body["properties"]["classes"]["items"]["maximum"] == 2**31 - 1


def test_content_types_are_the_real_ones(alice):
    doc = alice.get("/api/openapi.json").get_json()
    paths = doc["paths"]

    def answers(path, method="get", status="200"):
        return set(paths[path][method]["responses"][status].get("content", {}))

    base = "/api/projects/{project_id}"
    assert answers(f"{base}/images/{{image_id}}/file") == {"image/jpeg", "image/png"}
    assert answers(f"{base}/images/{{image_id}}/thumbnail") == {"image/jpeg"}
    assert answers("/api/datasets/{key}/archive") == answers("/api/datasets/{key}/archive", status="206") == {
        "application/zip"}
    assert answers(f"{base}/checkpoints/{{checkpoint_id}}/weights") == {"application/octet-stream"}
    assert answers(f"{base}/deployments/{{deployment_id}}/model") == {"application/octet-stream"}
    assert answers("/metrics") == {"text/plain"}
    for path, kinds in ((f"{base}/images", {"multipart/form-data", "application/json"}),
                        (f"{base}/imports/coco", {"multipart/form-data"}),
                        (f"{base}/checkpoints", {"multipart/form-data", "application/json"}),
                        ("/api/pipelines/{name}/runs", {"multipart/form-data", "application/json"})):
        body = paths[path]["post"]["requestBody"]
        assert body["required"] is True and set(body["content"]) == kinds, path
    upload = _resolve(doc, paths[f"{base}/images"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"])
    assert upload["properties"]["files"]["items"] == {"type": "string", "format": "binary"}
    for path, ops in paths.items():  # every answer but 204/304 says what it holds
        for method, op in ops.items():
            for status, response in op.get("responses", {}).items() if method != "parameters" else ():
                if status not in ("default", "204", "304") and "$ref" not in response:
                    assert response.get("content"), (method, path, status)
