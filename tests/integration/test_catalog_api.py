"""Projects, memberships, classes and label maps through the REST API."""

from __future__ import annotations

from store.schema import Dataset, DatasetStatus
from tests.conftest import unique


def test_project_lifecycle(alice, bob):
    name = unique("p")
    created = alice.post("/api/projects", json={"name": name, "description": "logos"})
    assert created.status_code == 201
    body = created.get_json()
    assert body["role"] == "admin" and body["description"] == "logos"
    pid = body["id"]

    assert [p["id"] for p in alice.get("/api/projects?limit=500").get_json()["items"]].count(pid) == 1
    assert pid not in [p["id"] for p in bob.get("/api/projects?limit=500").get_json()["items"]]

    renamed = alice.patch(f"/api/projects/{pid}", json={"name": name + "-x"})
    assert renamed.status_code == 200 and renamed.get_json()["name"] == name + "-x"
    assert alice.delete(f"/api/projects/{pid}").status_code == 204
    assert alice.get(f"/api/projects/{pid}").status_code == 404


def test_members_roles_and_last_admin(alice, bob, project):
    pid = project["id"]
    members = alice.get(f"/api/projects/{pid}/members").get_json()
    assert {m["user"]["name"]: m["role"] for m in members["items"]} == {"alice": "admin", "bob": "annotator", "carol": "viewer"}
    assert bob.get(f"/api/projects/{pid}").get_json()["role"] == "annotator"

    # the only admin cannot leave or step down
    assert alice.put(f"/api/projects/{pid}/members/alice", json={"role": "viewer"}).status_code == 409
    assert alice.delete(f"/api/projects/{pid}/members/alice").status_code == 409
    # with a second admin, she can
    assert alice.put(f"/api/projects/{pid}/members/bob", json={"role": "admin"}).status_code == 200
    assert alice.put(f"/api/projects/{pid}/members/alice", json={"role": "viewer"}).status_code == 200
    assert alice.get(f"/api/projects/{pid}").get_json()["role"] == "viewer"
    assert alice.put(f"/api/projects/{pid}/members/nobody", json={"role": "viewer"}).status_code == 403
    assert bob.put(f"/api/projects/{pid}/members/nobody", json={"role": "viewer"}).status_code == 404


def _class(api, pid, name, group=None):
    res = api.post(f"/api/projects/{pid}/classes", json={"name": name, "group": group})
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def test_classes_with_groups(alice, project):
    pid = project["id"]
    swoosh = _class(alice, pid, "swoosh", "nike")
    _class(alice, pid, "air", "nike")
    _class(alice, pid, "stripes", "adidas")
    nike = alice.get(f"/api/projects/{pid}/classes?group=nike").get_json()
    assert sorted(c["name"] for c in nike["items"]) == ["air", "swoosh"] and nike["total"] == 2

    patched = alice.patch(f"/api/projects/{pid}/classes/{swoosh['id']}", json={"color": "#ff0000", "group": None})
    assert patched.status_code == 200
    assert patched.get_json()["color"] == "#ff0000" and patched.get_json()["group"] is None
    assert alice.delete(f"/api/projects/{pid}/classes/{swoosh['id']}").status_code == 204
    assert alice.get(f"/api/projects/{pid}/classes/{swoosh['id']}").status_code == 404


def test_label_map_ids_follow_positions(alice, project):
    pid = project["id"]
    a, b, c = (_class(alice, pid, n) for n in ("a", "b", "c"))
    res = alice.post(f"/api/projects/{pid}/label-maps", json={"name": "v1", "classes": [c["id"], a["id"]]})
    assert res.status_code == 201, res.get_json()
    lm = res.get_json()
    assert [(e["id"], e["name"]) for e in lm["entries"]] == [(1, "c"), (2, "a")]

    reordered = alice.patch(f"/api/projects/{pid}/label-maps/{lm['id']}", json={"classes": [a["id"], b["id"], c["id"]]})
    assert reordered.status_code == 200, reordered.get_json()
    assert [(e["id"], e["name"]) for e in reordered.get_json()["entries"]] == [(1, "a"), (2, "b"), (3, "c")]

    # a class inside a label map cannot be deleted; the answer names the map
    refused = alice.delete(f"/api/projects/{pid}/classes/{b['id']}")
    assert refused.status_code == 409 and "v1" in refused.get_json()["error"]["message"]


def test_label_map_frozen_once_a_dataset_uses_it(alice, project, runtime):
    pid = project["id"]
    a, b = (_class(alice, pid, n) for n in ("a", "b"))
    lm = alice.post(f"/api/projects/{pid}/label-maps", json={"name": "frozen", "classes": [a["id"], b["id"]]}).get_json()
    with runtime.sessions() as session:
        session.add(Dataset(key=unique("k").ljust(64, "0")[:64], project_id=pid, name="d", handler="detection",
                            handler_version=1, label_map_id=lm["id"], data_revision="r", status=DatasetStatus.ready))
        session.commit()
    changed = alice.patch(f"/api/projects/{pid}/label-maps/{lm['id']}", json={"classes": [b["id"], a["id"]]})
    assert changed.status_code == 409 and "dataset" in changed.get_json()["error"]["message"]
    assert alice.patch(f"/api/projects/{pid}/label-maps/{lm['id']}", json={"name": "renamed"}).status_code == 200
    assert alice.delete(f"/api/projects/{pid}/label-maps/{lm['id']}").status_code == 409
