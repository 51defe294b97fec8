"""Every route needs a token; users see only their projects; roles limit writes."""

from __future__ import annotations

import re

import pytest

from tests.conftest import unique

PUBLIC = {("GET", "/api/health"), ("POST", "/api/session")}  # signing in is how a browser gets a session


def _concrete(rule: str) -> str:
    names = {"job_id": "0" * 36, "user_name": "abc"}  # a job id is a UUID's 36 characters
    return re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", lambda m: names.get(m.group(1), "1"), rule)


def test_every_route_but_health_and_sign_in_needs_a_token(app, anonymous):
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if (method, rule.rule) in PUBLIC:
                continue
            res = getattr(anonymous, method.lower())(_concrete(rule.rule))
            assert res.status_code == 401, (method, rule.rule, res.status_code)
            assert res.get_json()["error"]["code"] == "unauthorized"
            checked += 1
    assert checked >= 20  # the whole surface, not a sample
    assert anonymous.get("/api/health").status_code == 200


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer ll_" + "x" * 43, "Basic YWxpY2U6cHc=", "Bearer"])
def test_bad_tokens_are_refused(client, header):
    res = client.get("/api/projects", headers={"Authorization": header})
    assert res.status_code == 401


def test_revoked_token_is_refused(runtime, client):
    from sqlalchemy import update

    from store.accounts import create_user, hash_token, issue_token
    from store.schema import ApiToken
    from store.schema.base import utcnow

    with runtime.sessions() as session:
        value = issue_token(session, create_user(session, unique("dave")))
        session.commit()
    assert client.get("/api/me", headers={"Authorization": f"Bearer {value}"}).status_code == 200
    with runtime.sessions() as session:
        session.execute(update(ApiToken).where(ApiToken.token_hash == hash_token(value)).values(revoked_at=utcnow()))
        session.commit()
    assert client.get("/api/me", headers={"Authorization": f"Bearer {value}"}).status_code == 401


def test_tokens_are_stored_hashed(sql, tokens):
    stored = {row[0] for row in sql("SELECT token_hash FROM api_tokens")}
    assert tokens["alice"] not in stored
    from store.accounts import hash_token

    assert hash_token(tokens["alice"]) in stored


def test_other_projects_are_invisible(alice, bob, client, tokens):
    from tests.support.api import ApiClient

    dave_project = bob.post("/api/projects", json={"name": unique("bobs")}).get_json()["id"]
    cls = bob.post(f"/api/projects/{dave_project}/classes", json={"name": "x"}).get_json()["id"]
    lm = bob.post(f"/api/projects/{dave_project}/label-maps", json={"name": "m", "classes": [cls]}).get_json()["id"]
    for path in (f"/api/projects/{dave_project}", f"/api/projects/{dave_project}/classes",
                 f"/api/projects/{dave_project}/classes/{cls}", f"/api/projects/{dave_project}/label-maps/{lm}",
                 f"/api/projects/{dave_project}/members", f"/api/jobs?project_id={dave_project}"):
        res = alice.get(path)
        assert res.status_code == 404, path
        assert str(dave_project) in res.get_json()["error"]["message"]
    assert alice.patch(f"/api/projects/{dave_project}", json={"name": "mine"}).status_code == 404
    assert alice.delete(f"/api/projects/{dave_project}/classes/{cls}").status_code == 404
    # a superuser sees it
    root = ApiClient(client, tokens["root"])
    assert root.get(f"/api/projects/{dave_project}").status_code == 200


def test_viewer_and_annotator_cannot_administer(bob, carol, project):
    pid = project["id"]
    for who in (bob, carol):
        assert who.get(f"/api/projects/{pid}/classes").status_code == 200
        res = who.post(f"/api/projects/{pid}/classes", json={"name": "nope"})
        assert res.status_code == 403
        assert "admin" in res.get_json()["error"]["message"]
        assert who.patch(f"/api/projects/{pid}", json={"description": "x"}).status_code == 403
        assert who.delete(f"/api/projects/{pid}").status_code == 403
    # a viewer cannot enqueue work in the project either
    res = carol.post("/api/jobs", json={"kind": "probe", "queue": "inference", "project_id": pid})
    assert res.status_code == 403


def test_ids_of_other_projects_are_refused_and_nothing_is_written(alice, bob, project, sql):
    other = bob.post("/api/projects", json={"name": unique("other")}).get_json()["id"]
    foreign = bob.post(f"/api/projects/{other}/classes", json={"name": "foreign"}).get_json()["id"]
    own = alice.post(f"/api/projects/{project['id']}/classes", json={"name": "own"}).get_json()["id"]
    before = sql("SELECT count(*) FROM label_maps")[0][0], sql("SELECT count(*) FROM label_map_entries")[0][0]
    res = alice.post(f"/api/projects/{project['id']}/label-maps", json={"name": "mixed", "classes": [own, foreign]})
    assert res.status_code == 400
    assert str(foreign) in res.get_json()["error"]["message"]
    after = sql("SELECT count(*) FROM label_maps")[0][0], sql("SELECT count(*) FROM label_map_entries")[0][0]
    assert after == before
