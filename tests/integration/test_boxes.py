"""Boxes with image revisions, the review loop, the class queries and the data revision, through the API
against real images ingested by a real worker."""

from __future__ import annotations

import pytest

from tests.conftest import unique
from tests.support import images as img
from tests.support.ingest import image_ids, ingest


@pytest.fixture()
def scene(alice, project, workers):
    """Three images (200x100, 120x80, 64x48) and classes cat, dog (project) and a class of another project."""
    pid = project["id"]
    cls = {n: alice.post(f"/api/projects/{pid}/classes", json={"name": n}).get_json()["id"] for n in ("cat", "dog")}
    ids = image_ids(ingest(alice, pid, {"wide.png": img.png(200, 100, seed=1), "mid.png": img.png(120, 80, seed=2),
                                        "small.jpg": img.jpeg(64, 48, seed=3)}))
    other = alice.post("/api/projects", json={"name": unique("other")}).get_json()["id"]
    foreign = alice.post(f"/api/projects/{other}/classes", json={"name": "cat"}).get_json()["id"]
    return {"pid": pid, "cls": cls, "img": ids, "foreign_class": foreign, "base": f"/api/projects/{pid}"}


def box(class_id, x=10, y=10, w=50, h=40, **kw):
    return {"class_id": class_id, "x": x, "y": y, "w": w, "h": h, **kw}


def test_every_write_needs_the_current_revision_and_a_stale_one_changes_nothing(alice, bob, scene, sql):
    base, cat, dog = scene["base"], scene["cls"]["cat"], scene["cls"]["dog"]
    image = scene["img"]["wide.png"]
    boxes = f"{base}/images/{image}/annotations"
    assert alice.get(boxes).get_json() == {"image_id": image, "revision": 0, "items": []}

    made = bob.post(boxes, json={**box(cat), "revision": 0})
    assert made.status_code == 201 and made.get_json()["revision"] == 1
    aid = made.get_json()["annotation"]["id"]
    assert made.get_json()["annotation"]["source"] == "human" and made.get_json()["annotation"]["status"] == "accepted"

    stale = alice.post(boxes, json={**box(dog), "revision": 0})  # alice read revision 0 too
    assert stale.status_code == 409
    err = stale.get_json()["error"]
    assert err["code"] == "stale_revision" and err["current_revision"] == 1 and "reload" in err["message"]
    assert sql("SELECT count(*) FROM annotations WHERE image_id = :i", i=image)[0][0] == 1

    moved = alice.patch(f"{base}/annotations/{aid}", json={"revision": 1, "x": 20, "class_id": dog})
    assert moved.status_code == 200 and moved.get_json()["revision"] == 2
    assert moved.get_json()["annotation"]["x"] == 20 and moved.get_json()["annotation"]["class_id"] == dog
    assert bob.patch(f"{base}/annotations/{aid}", json={"revision": 1, "x": 30}).status_code == 409
    assert sql("SELECT x FROM annotations WHERE id = :a", a=aid)[0][0] == 20

    assert alice.delete(f"{base}/annotations/{aid}?revision=1").status_code == 409
    gone = alice.delete(f"{base}/annotations/{aid}?revision=2")
    assert gone.status_code == 200 and gone.get_json() == {"revision": 3, "annotation": None}

    replaced = alice.put(boxes, json={"revision": 3, "items": [box(cat), box(dog, 100, 20, 60, 70)]})
    assert replaced.status_code == 200 and replaced.get_json()["revision"] == 4
    kept = [a["id"] for a in replaced.get_json()["items"]]
    assert len(kept) == 2
    assert bob.put(boxes, json={"revision": 3, "items": []}).status_code == 409
    assert [r[0] for r in sql("SELECT id FROM annotations WHERE image_id = :i ORDER BY id", i=image)] == kept
    assert alice.get(f"{base}/images/{image}").get_json()["revision"] == 4


@pytest.mark.parametrize("payload, field", [
    ({"x": 180, "w": 30}, "x"),                   # leaves the 200 px wide image
    ({"y": 100}, "x"),                            # starts on the bottom edge
    ({"w": 0}, "w"),                              # zero size
    ({"h": -5}, "h"),
    ({"x": -1}, "x"),
    ({"x": float("nan")}, None),                  # not valid JSON for a number: refused as a body
    ({"score": 0.5}, "source"),                   # a human box has no score
    ({"source": "model", "score": 1.5}, "score"),
    ({"status": "maybe"}, "status"),
    ({"revision": None}, "revision"),
    ({"colour": "red"}, "colour"),
])
def test_bad_boxes_are_refused_naming_the_field(alice, scene, sql, payload, field):
    image = scene["img"]["wide.png"]
    body = {**box(scene["cls"]["cat"]), "revision": 0, **payload}
    res = alice.post(f"{scene['base']}/images/{image}/annotations", json=body)
    assert res.status_code == 400, res.get_json()
    if field:
        assert field in res.get_json()["error"]["fields"], res.get_json()
    assert sql("SELECT count(*) FROM annotations WHERE image_id = :i", i=image)[0][0] == 0
    assert alice.get(f"{scene['base']}/images/{image}").get_json()["revision"] == 0


def test_boxes_need_a_class_of_the_project_the_role_and_a_visible_image(alice, carol, scene, tokens, client):
    base, image = scene["base"], scene["img"]["wide.png"]
    url = f"{base}/images/{image}/annotations"
    res = alice.post(url, json={**box(scene["foreign_class"]), "revision": 0})
    assert res.status_code == 400 and "class_id" in res.get_json()["error"]["fields"]
    assert carol.post(url, json={**box(scene["cls"]["cat"]), "revision": 0}).status_code == 403
    assert carol.get(url).status_code == 200
    other = alice.post("/api/projects", json={"name": unique("p")}).get_json()["id"]
    assert alice.get(f"/api/projects/{other}/images/{image}/annotations").status_code == 404
    overhang = alice.post(url, json={**box(scene["cls"]["cat"], 150, 50, 50.4, 50.3), "revision": 0})
    assert overhang.status_code == 201  # within half a pixel: clipped to the image
    assert overhang.get_json()["annotation"]["w"] == 50 and overhang.get_json()["annotation"]["h"] == 50


def test_queries_are_answered_per_class(alice, scene):
    base, cat, dog = scene["base"], scene["cls"]["cat"], scene["cls"]["dog"]
    wide, mid = scene["img"]["wide.png"], scene["img"]["mid.png"]
    alice.put(f"{base}/images/{wide}/annotations", json={"revision": 0, "items": [box(cat), box(cat, 60), box(dog)]})
    alice.put(f"{base}/images/{mid}/annotations",
              json={"revision": 0, "items": [box(cat), box(dog, source="model", score=0.9)]})

    counts = alice.get(f"{base}/stats/classes").get_json()
    assert counts["images"] == 3 and counts["images_without_boxes"] == 1
    assert {c["name"]: (c["boxes"], c["images"]) for c in counts["classes"]} == {"cat": (3, 2), "dog": (1, 1)}
    proposed = alice.get(f"{base}/stats/classes?status=proposed").get_json()
    assert {c["name"]: c["boxes"] for c in proposed["classes"]} == {"cat": 0, "dog": 1}

    examples = alice.get(f"{base}/stats/examples?per_class=2").get_json()["classes"]
    assert [len(c["examples"]) for c in examples] == [2, 1]
    assert all(e["image_id"] in (wide, mid) for c in examples for e in c["examples"])

    def names(query):
        return sorted(i["original_name"] for i in alice.get(f"{base}/images?{query}").get_json()["items"])

    assert names("annotated=false") == ["small.jpg"]
    assert names("annotated=true") == ["mid.png", "wide.png"]
    assert names(f"class_id={dog}&status=accepted") == ["wide.png"]
    assert names("source=model") == ["mid.png"]
    assert names("reviewed=false") == ["mid.png"]  # a prediction awaits review
    page = alice.get(f"{base}/images?limit=1&order=oldest").get_json()
    assert page["total"] == 3 and [i["original_name"] for i in page["items"]] == ["wide.png"]
    assert alice.get(f"{base}/images?annotated=maybe").status_code == 400

    lm = alice.post(f"{base}/label-maps", json={"name": "pets", "classes": [dog, cat]}).get_json()
    dist = alice.get(f"{base}/label-maps/{lm['id']}/distribution").get_json()
    assert dist["images"] == 2
    assert [(c["id"], c["name"], c["boxes"], c["images"]) for c in dist["classes"]] == [(1, "dog", 1, 1), (2, "cat", 3, 2)]


def test_review_loop_builds_the_failed_cases_set(alice, bob, scene):
    base, cat, dog = scene["base"], scene["cls"]["cat"], scene["cls"]["dog"]
    wide, mid = scene["img"]["wide.png"], scene["img"]["mid.png"]
    preds = alice.put(f"{base}/images/{wide}/annotations", json={"revision": 0, "items": [
        box(cat, source="model", score=0.8), box(dog, 100, 10, 40, 40, source="model", score=0.6), box(cat, 5, 50)]}
    ).get_json()["items"]
    good, bad, human = (p["id"] for p in preds)
    assert preds[0]["status"] == "proposed"
    queue = alice.get(f"{base}/annotations?source=model&reviewed=false").get_json()
    assert {a["id"] for a in queue["items"]} == {good, bad}

    ok = bob.put(f"{base}/annotations/{good}/review", json={"verdict": "valid"})
    assert ok.status_code == 200 and ok.get_json()["status"] == "accepted" and ok.get_json()["review"]["verdict"] == "valid"
    wrong = bob.put(f"{base}/annotations/{bad}/review", json={
        "verdict": "invalid", "corrected_box": {"x": 120, "y": 20, "w": 30, "h": 30}, "corrected_class_id": cat,
        "note": "it is a cat, further right"})
    assert wrong.status_code == 200
    review = wrong.get_json()["review"]
    assert wrong.get_json()["status"] == "rejected" and review["corrected_class_id"] == cat
    fixed = alice.get(f"{base}/annotations/{review['corrected_box']['annotation_id']}").get_json()
    assert (fixed["source"], fixed["status"], fixed["class_id"]) == ("human", "accepted", cat)
    assert [fixed[k] for k in "xywh"] == [120, 20, 30, 30]

    failed = alice.get(f"{base}/failed-cases").get_json()
    assert failed["total"] == 1
    case = failed["items"][0]
    assert case["prediction"]["id"] == bad and case["image"]["id"] == wide and case["review"]["note"].startswith("it is")
    assert [i["id"] for i in alice.get(f"{base}/images?failed=true").get_json()["items"]] == [wide]
    assert alice.get(f"{base}/images?reviewed=false").get_json()["total"] == 0
    assert alice.get(f"{base}/annotations?verdict=invalid").get_json()["total"] == 1

    again = bob.put(f"{base}/annotations/{bad}/review", json={"verdict": "invalid", "corrected_box": {
        "x": 1, "y": 1, "w": 5, "h": 5}})
    assert again.status_code == 409 and "correction" in again.get_json()["error"]["message"]
    assert bob.put(f"{base}/annotations/{human}/review", json={"verdict": "valid"}).status_code == 409
    assert bob.put(f"{base}/annotations/{good}/review", json={
        "verdict": "valid", "corrected_class_id": dog}).status_code == 400
    outside = bob.put(f"{base}/annotations/{good}/review", json={
        "verdict": "invalid", "corrected_box": {"x": 190, "y": 0, "w": 50, "h": 10}})
    assert outside.status_code == 400
    assert alice.get(f"{base}/annotations/{good}").get_json()["review"]["verdict"] == "valid"  # unchanged

    lm = alice.post(f"{base}/label-maps", json={"name": "cats", "classes": [cat]}).get_json()
    assert alice.get(f"{base}/label-maps/{lm['id']}/distribution?subset=failed").get_json()["images"] == 1
    alice.put(f"{base}/images/{mid}/annotations", json={"revision": 0, "items": [box(cat)]})
    assert alice.get(f"{base}/label-maps/{lm['id']}/distribution").get_json()["images"] == 2
    assert alice.get(f"{base}/label-maps/{lm['id']}/distribution?subset=failed").get_json()["images"] == 1


def test_data_revision_changes_with_anything_the_label_map_selects(alice, scene):
    base, cat, dog = scene["base"], scene["cls"]["cat"], scene["cls"]["dog"]
    wide, mid, small = (scene["img"][n] for n in ("wide.png", "mid.png", "small.jpg"))
    lm = alice.post(f"{base}/label-maps", json={"name": "cats", "classes": [cat]}).get_json()["id"]

    def revision():
        return alice.get(f"{base}/label-maps/{lm}/distribution").get_json()["data_revision"]

    seen = [revision()]

    def changed():
        now = revision()
        assert now not in seen, "the data revision did not change"
        seen.append(now)

    def unchanged():
        assert revision() == seen[-1]

    aid = alice.post(f"{base}/images/{wide}/annotations", json={**box(cat), "revision": 0}).get_json()["annotation"]["id"]
    changed()
    alice.patch(f"{base}/annotations/{aid}", json={"revision": 1, "w": 20})
    changed()
    alice.post(f"{base}/images/{mid}/annotations", json={**box(dog), "revision": 0})  # not a class of the map
    unchanged()
    ingest(alice, scene["pid"], {"new.png": img.png(30, 30, seed=99)})  # no boxes: not selected
    unchanged()
    alice.patch(f"/api/projects/{scene['pid']}/classes/{cat}", json={"name": "kitten"})
    changed()
    pred = alice.post(f"{base}/images/{small}/annotations",
                      json={**box(cat, 1, 1, 20, 20, source="model", score=0.5), "revision": 0}).get_json()
    unchanged()  # proposed boxes are not training data
    alice.put(f"{base}/annotations/{pred['annotation']['id']}/review", json={"verdict": "valid"})
    changed()  # accepted now
    alice.delete(f"{base}/annotations/{aid}?revision=2")
    changed()
    alice.delete(f"{base}/images/{small}")
    changed()
    assert len(set(seen)) == len(seen)
