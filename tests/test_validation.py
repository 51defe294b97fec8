"""Bad input gets a 4xx JSON error that names the problem, and nothing half-written stays behind."""

from __future__ import annotations

import pytest

from tests.conftest import unique


def _error(res, status):
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True))
    body = res.get_json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    return body["error"]


def test_malformed_json(alice):
    res = alice.client.post("/api/projects", data="{not json", content_type="application/json",
                            headers={"Authorization": f"Bearer {alice.token}"})
    err = _error(res, 400)
    assert "JSON" in err["message"]


def test_non_json_body(alice):
    res = alice.client.post("/api/projects", data="name=x", content_type="application/x-www-form-urlencoded",
                            headers={"Authorization": f"Bearer {alice.token}"})
    assert "application/json" in _error(res, 415)["message"]


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({}, "name", "Missing data"),
        ({"name": 42}, "name", "Not a valid string"),
        ({"name": ""}, "name", "Length"),
        ({"name": " padded "}, "name", "whitespace"),
        ({"name": "x\u0000y"}, "name", "control"),
        ({"name": "ok", "colour": "red"}, "colour", "Unknown field"),
        ({"name": "ok", "description": ["a"]}, "description", "Not a valid string"),
    ],
)
def test_project_fields(alice, body, field, words):
    err = _error(alice.post("/api/projects", json=body), 400)
    assert field in err["fields"], err
    assert words.lower() in " ".join(map(str, err["fields"][field])).lower() or words.lower() in err["message"].lower()
    assert field in err["message"]


def test_json_array_instead_of_object(alice):
    _error(alice.post("/api/projects", json=["name"]), 400)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "m", "classes": []}, "classes"),
        ({"name": "m", "classes": ["1"]}, "classes"),
        ({"name": "m", "classes": [1.5]}, "classes"),
        ({"name": "m", "classes": [0]}, "classes"),
        ({"name": "m", "classes": [True]}, "classes"),
        ({"name": "m"}, "classes"),
        ({"name": "m", "classes": 3}, "classes"),
    ],
)
def test_label_map_fields(alice, project, body, field, sql):
    before = sql("SELECT count(*) FROM label_maps")[0][0]
    err = _error(alice.post(f"/api/projects/{project['id']}/label-maps", json=body), 400)
    assert field in err["fields"]
    assert sql("SELECT count(*) FROM label_maps")[0][0] == before


def test_label_map_duplicate_class_ids(alice, project):
    cid = alice.post(f"/api/projects/{project['id']}/classes", json={"name": "dup"}).get_json()["id"]
    err = _error(alice.post(f"/api/projects/{project['id']}/label-maps", json={"name": "m", "classes": [cid, cid]}), 400)
    assert "twice" in err["message"]


def test_duplicate_names_conflict(alice, project):
    name = unique("same")
    assert alice.post("/api/projects", json={"name": name}).status_code == 201
    err = _error(alice.post("/api/projects", json={"name": name}), 409)
    assert name in err["message"]
    pid = project["id"]
    assert alice.post(f"/api/projects/{pid}/classes", json={"name": "logo"}).status_code == 201
    assert "logo" in _error(alice.post(f"/api/projects/{pid}/classes", json={"name": "logo"}), 409)["message"]


def test_class_color_and_query_validation(alice, project):
    pid = project["id"]
    assert "color" in _error(alice.post(f"/api/projects/{pid}/classes", json={"name": "c", "color": "red"}), 400)["fields"]
    assert "limit" in _error(alice.get(f"/api/projects/{pid}/classes?limit=0"), 400)["fields"]
    assert "limit" in _error(alice.get(f"/api/projects/{pid}/classes?limit=abc"), 400)["fields"]


def test_oversize_body(alice, settings):
    big = {"name": "big", "description": "x" * (settings.max_json_bytes + 10)}
    assert "too large" in _error(alice.post("/api/projects", json=big), 413)["message"]


def test_job_submission_validation(alice, project):
    assert "kind" in _error(alice.post("/api/jobs", json={"kind": "nope", "queue": "inference"}), 400)["fields"]
    assert "queue" in _error(alice.post("/api/jobs", json={"kind": "probe"}), 400)["fields"]
    assert "queue" in _error(alice.post("/api/jobs", json={"kind": "probe", "queue": "gpu"}), 400)["fields"]
    assert "params" in _error(alice.post("/api/jobs", json={"kind": "probe", "queue": "inference", "params": {"x": 1}}), 400)["fields"]
    assert _error(alice.post("/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": 999999}), 404)
    assert "status" in _error(alice.get("/api/jobs?status=done"), 400)["fields"]


def test_unknown_routes_and_methods_are_json(alice):
    _error(alice.get("/api/nothing-here"), 404)
    _error(alice.put("/api/projects", json={}), 405)
    _error(alice.get("/api/jobs/not-a-job"), 404)
