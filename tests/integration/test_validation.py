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


# --- the bad-input corpus: each answers 400 naming the field (404 for an id that cannot exist) -----------
BIG = 2**63  # one past the largest 64-bit integer
ID = 2**31  # one past the largest id the catalog stores (INTEGER: 32-bit in PostgreSQL)


def _raw(alice, method, path, text, content_type="application/json"):
    return alice.client.open(path, method=method, data=text, content_type=content_type,
                             headers={"Authorization": f"Bearer {alice.token}"})


def _counts(sql):
    return [sql(f"SELECT count(*) FROM {t}")[0][0] for t in ("projects", "classes", "label_maps", "jobs")]


@pytest.mark.parametrize("path", [
    "/api/projects/{big}", "/api/projects/{pid}/classes/{big}", "/api/projects/{pid}/label-maps/{huge}",
    "/api/projects/{pid}/images/{big}/file", "/api/projects/{pid}/checkpoints/{id}/weights",
    "/api/projects/{pid}/deployments/{huge}", "/api/projects/{pid}/annotations/{id}",
])
def test_huge_path_ids_are_404(alice, project, path):
    url = path.format(pid=project["id"], big=BIG, huge=10**40, id=ID)
    _error(alice.get(url), 404)
    _error(alice.get(path.format(pid=project["id"], big=ID - 1, huge=ID - 1, id=ID - 1)), 404)  # the largest id
    if path.rsplit("/", 2)[-2] in ("projects", "classes", "label-maps", "annotations"):  # items one can delete
        _error(alice.delete(url), 404)


@pytest.mark.parametrize("body, field", [
    ({"name": "m", "classes": [BIG]}, "classes.0"),  # past 64 bits: refused before the schema
    ({"name": "m", "classes": [BIG - 1]}, "classes"),  # past the largest id: the schema's maximum
    ({"name": "m", "classes": [ID]}, "classes"),
    ({"name": "m", "classes": [ID - 1]}, "classes"),  # an id that fits, of no class of the project
    ({"name": "m", "classes": [-BIG - 1]}, "classes.0"),
])
def test_huge_body_ints_are_400(alice, project, sql, body, field):
    before = _counts(sql)
    err = _error(alice.post(f"/api/projects/{project['id']}/label-maps", json=body), 400)
    assert field in err["fields"], err
    assert _counts(sql) == before


def test_huge_ints_in_other_bodies(alice, project, sql):
    before = _counts(sql)
    for big in (BIG, ID):
        job = {"kind": "probe", "queue": "training", "project_id": big}
        assert "project_id" in _error(alice.post("/api/jobs", json=job), 400)["fields"]
        batch = _error(alice.post("/api/jobs/batch", json={"jobs": [job]}), 400)["fields"]
        assert "jobs.0.project_id" in batch or "jobs" in batch, batch
        assert "revision" in _error(alice.put(f"/api/projects/{project['id']}/images/1/annotations",
                                              json={"revision": big, "items": []}), 400)["fields"]
        assert "project_id" in _error(alice.post("/api/datasets", json={
            "project_id": big, "name": "d", "handler": "detection@1", "label_map_id": 1}), 400)["fields"]
    assert "x" in _error(alice.post(f"/api/projects/{project['id']}/images/1/annotations", json={
        "revision": 0, "class_id": 1, "x": 10**400, "y": 0, "w": 1, "h": 1}), 400)["fields"]  # no float overflow
    assert _counts(sql) == before


@pytest.mark.parametrize("query, field", [
    ("offset={big}", "offset"), ("limit={big}", "limit"), ("offset=-1", "offset"), ("offset={huge}", "offset"),
])
def test_huge_offsets_are_400(alice, project, query, field):
    q = query.format(big=BIG, huge=10**40)
    for path in ("/api/projects", f"/api/projects/{project['id']}/classes", f"/api/projects/{project['id']}/images"):
        err = _error(alice.get(f"{path}?{q}"), 400)
        assert field in err["fields"], err
    assert field in _error(alice.get(f"/api/jobs?project_id={ID - 1}&{q}"), 400)["fields"]
    assert "project_id" in _error(alice.get(f"/api/jobs?project_id={ID}"), 400)["fields"]
    page = alice.get(f"/api/projects?offset={BIG - 1}")
    assert page.status_code == 200 and page.get_json()["items"] == []


@pytest.mark.parametrize("text, field", [
    ("[" * 10_000 + "]" * 10_000, "json"),
    ('{"name": "deep", "description": ' + "[" * 100 + "]" * 100 + "}", "description" + ".0" * 63),
    ('{"name": "deep", "description": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}", "json"),  # past the parser
])
def test_deep_json_is_400(alice, sql, text, field):
    before = _counts(sql)
    err = _error(_raw(alice, "POST", "/api/projects", text), 400)
    assert "nested deeper than" in err["message"], err
    assert field in err["fields"] or any(k.startswith(field) for k in err["fields"]), err
    assert _counts(sql) == before


def test_deep_json_in_job_params_and_coco(alice, project, sql):
    import io

    before = _counts(sql)
    params = "{" + '"p": {' * 70 + "}" * 70 + "}"
    err = _error(_raw(alice, "POST", "/api/jobs", '{"kind": "probe", "queue": "training", "params": ' + params + "}"), 400)
    assert all(k.startswith("params.p") for k in err["fields"]), err
    coco = ("[" * 10_000 + "]" * 10_000).encode()
    res = alice.client.post(f"/api/projects/{project['id']}/imports/coco", headers={"Authorization": f"Bearer {alice.token}"},
                            data={"annotations": (io.BytesIO(coco), "coco.json"), "files": (io.BytesIO(b"x"), "a.jpg")})
    assert "annotations" in _error(res, 400)["fields"]
    assert _counts(sql) == before


@pytest.mark.parametrize("text", [
    '{"name": "x\\ud800y"}', '{"name": "\\udc00"}', '{"name": "ok", "description": "tail \\udfff"}',
    b'{"name": "raw \xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes (Python's json would pass it)
    '{"name": "ok", "\\ud800": 1}',
])
def test_lone_surrogates_are_400(alice, project, sql, text):
    before = _counts(sql)
    for path in ("/api/projects", f"/api/projects/{project['id']}/classes"):
        err = _error(_raw(alice, "POST", path, text), 400)
        assert "Unicode" in err["message"], err
        assert set(err["fields"]) <= {"name", "description", "json"}
    assert _counts(sql) == before


@pytest.mark.parametrize("method, path, body, field", [
    ("POST", "/api/projects", {"name": "a\u0000b"}, "name"),
    ("POST", "/api/projects", {"name": "ok-nul", "description": "x\u0000"}, "description"),
    ("POST", "/api/projects/{pid}/classes", {"name": "\u0000"}, "name"),
    ("POST", "/api/projects/{pid}/classes", {"name": "c", "group": "g\u0000"}, "group"),
    ("PATCH", "/api/projects/{pid}", {"description": "\u0000"}, "description"),
    ("POST", "/api/projects/{pid}/label-maps", {"name": "m\u0000", "classes": [1]}, "name"),
    ("POST", "/api/projects/{pid}/images", {"urls": ["http://example.org/\u0000"]}, "urls"),
])
def test_nul_in_strings_is_400(alice, project, sql, method, path, body, field):
    before = _counts(sql)
    res = alice.client.open(path.format(pid=project["id"]), method=method, json=body,
                            headers={"Authorization": f"Bearer {alice.token}"})
    err = _error(res, 400)
    assert any(k == field or k.startswith(f"{field}.") for k in err["fields"]), err
    assert _counts(sql) == before


def test_nul_in_queries_and_paths(alice, project):
    pid = project["id"]
    assert "group" in _error(alice.get(f"/api/projects/{pid}/classes?group=a%00b"), 400)["fields"]
    assert "kind" in _error(alice.get("/api/jobs?kind=%00"), 400)["fields"]
    _error(alice.put(f"/api/projects/{pid}/members/bob%00", json={"role": "viewer"}), 404)  # no such user name
    _error(alice.get(f"/api/datasets/{'0' * 63}%00"), 404)
    _error(alice.get("/api/jobs/" + "a" * 35 + "%00"), 404)


def test_nan_and_infinity_are_400(alice, sql):
    before = _counts(sql)
    for text in ('{"name": "n", "description": NaN}', '{"name": "n", "x": Infinity}'):
        assert "JSON" in _error(_raw(alice, "POST", "/api/projects", text), 400)["message"]
    err = _error(_raw(alice, "POST", "/api/jobs", '{"kind": "probe", "queue": "training", "params": {"x": 1e400}}'), 400)
    assert "params.x" in err["fields"]
    assert _counts(sql) == before


def test_upload_file_names_are_cleaned(alice, project):
    import io

    from tests.support import images

    res = alice.client.post(f"/api/projects/{project['id']}/images", headers={"Authorization": f"Bearer {alice.token}"},
                            data={"files": [(io.BytesIO(images.jpeg(seed=71)), "cat\u0000\u0007.jpg"),
                                            (io.BytesIO(images.jpeg(seed=72)), "\u0000")]})
    assert res.status_code == 202, res.get_json()
    names = [f["name"] for f in res.get_json()["params"]["files"]]
    assert names == ["cat.jpg", "file-2"]
    err = _error(alice.client.post(f"/api/projects/{project['id']}/images",
                                   headers={"Authorization": f"Bearer {alice.token}"},
                                   data={"files": (io.BytesIO(images.jpeg(seed=73)), "a.jpg"), "note": "x"}), 400)
    assert "note" in err["fields"]
