"""COCO round trip through the API: export → pycocotools → import into a new project → same boxes and
classes. And what happens to an image's boxes when it is deleted."""

from __future__ import annotations

import io
import json

from pycocotools.coco import COCO

from tests.conftest import unique
from tests.support import images as img
from tests.support.blobs import age
from tests.support.ingest import image_ids, ingest, upload
from services.collector import collect_blobs


def test_export_loads_in_pycocotools_and_imports_into_a_new_project_with_the_same_boxes(alice, project, workers, tmp_path):
    pid = project["id"]
    base = f"/api/projects/{pid}"
    cat = alice.post(f"{base}/classes", json={"name": "cat", "group": "pets"}).get_json()["id"]
    car = alice.post(f"{base}/classes", json={"name": "car"}).get_json()["id"]
    ids = image_ids(ingest(alice, pid, {"hopper.jpg": img.photograph(), "street.png": img.png(160, 120, seed=5),
                                        "empty.jpg": img.jpeg(50, 50, seed=6)}))
    hopper, street = ids["hopper.jpg"], ids["street.png"]
    alice.put(f"{base}/images/{hopper}/annotations", json={"revision": 0, "items": [
        {"class_id": cat, "x": 10.5, "y": 20, "w": 100, "h": 80.25}, {"class_id": car, "x": 200, "y": 300, "w": 50, "h": 60},
        {"class_id": car, "x": 1, "y": 1, "w": 5, "h": 5, "source": "model", "score": 0.4}]})  # proposed: not exported
    alice.put(f"{base}/images/{street}/annotations", json={"revision": 0, "items": [
        {"class_id": car, "x": 0, "y": 0, "w": 160, "h": 120}]})

    res = alice.get(f"{base}/exports/coco")
    assert res.status_code == 200 and "attachment" in res.headers["Content-Disposition"]
    path = tmp_path / "export.json"
    path.write_bytes(res.data)
    coco = COCO(str(path))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["car", "cat"]
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) == 3
    exported = {(a["image_id"], coco.loadCats(a["category_id"])[0]["name"], tuple(a["bbox"]))
                for a in coco.loadAnns(coco.getAnnIds())}
    assert exported == {(hopper, "cat", (10.5, 20, 100, 80.25)), (hopper, "car", (200, 300, 50, 60)),
                        (street, "car", (0, 0, 160, 120))}

    # the images as a client would download them, named as the export names them
    doc = json.loads(res.data)
    files = {i["file_name"]: alice.get(f"{base}/images/{i['id']}/file").data for i in doc["images"]}
    target = alice.post("/api/projects", json={"name": unique("imported")}).get_json()["id"]
    job = ingest(alice, target, files, path="imports/coco",
                 extra={"annotations": (io.BytesIO(res.data), "export.json")})
    assert job["result"]["accepted"] == 3
    assert sorted(job["result"]["coco"]["classes_created"]) == ["car", "cat"]
    assert job["result"]["coco"]["boxes"] == 3 and job["result"]["coco"]["images_without_file"] == []

    again = alice.get(f"/api/projects/{target}/exports/coco").get_json()
    classes = {c["id"]: c for c in again["categories"]}
    names = {i["id"]: i["file_name"] for i in again["images"]}
    sizes = {i["id"]: (i["width"], i["height"]) for i in again["images"]}
    old_names = {i["id"]: i["file_name"] for i in doc["images"]}
    imported = {(names[a["image_id"]], classes[a["category_id"]]["name"], tuple(a["bbox"])) for a in again["annotations"]}
    original = {(old_names[i], n, b) for i, n, b in exported}
    assert {(name.split(".")[1], n, b) for name, n, b in imported} == {(o.split(".")[1], n, b) for o, n, b in original}
    assert sorted(sizes.values()) == sorted((i["width"], i["height"]) for i in doc["images"])
    assert classes[next(c for c in classes if classes[c]["name"] == "cat")]["supercategory"] == "pets"

    by_label_map = alice.post(f"{base}/label-maps", json={"name": "cars", "classes": [car]}).get_json()["id"]
    only_cars = alice.get(f"{base}/exports/coco?label_map_id={by_label_map}").get_json()
    assert [c["name"] for c in only_cars["categories"]] == ["car"] and len(only_cars["annotations"]) == 2
    assert {a["category_id"] for a in only_cars["annotations"]} == {1}


def test_bad_coco_documents_are_a_400_listing_the_problems(alice, project, sql):
    pid = project["id"]
    jobs_before = sql("SELECT count(*) FROM jobs")[0][0]
    bad = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5]},
                           {"id": 2, "image_id": 9, "category_id": 1, "bbox": [0, 0, -1, 5]}]}
    res = upload(alice, pid, {"a.jpg": img.jpeg()}, path="imports/coco",
                 extra={"annotations": (io.BytesIO(json.dumps(bad).encode()), "coco.json")})
    assert res.status_code == 400
    problems = res.get_json()["error"]["fields"]["annotations"]
    assert any("annotations[0]" in p and "category" in p for p in problems), problems
    assert any("annotations[1]" in p for p in problems), problems
    not_json = upload(alice, pid, {"a.jpg": img.jpeg()}, path="imports/coco",
                      extra={"annotations": (io.BytesIO(b"{nope"), "coco.json")})
    assert not_json.status_code == 400 and "not JSON" in not_json.get_json()["error"]["message"]
    assert upload(alice, pid, {"a.jpg": img.jpeg()}, path="imports/coco").status_code == 400  # no JSON at all
    assert sql("SELECT count(*) FROM jobs")[0][0] == jobs_before


def test_deleting_an_image_deletes_its_boxes_and_reviews_and_the_collector_its_files_unless_shared(
        alice, project, workers, runtime, sql):
    pid = project["id"]
    base = f"/api/projects/{pid}"
    cat = alice.post(f"{base}/classes", json={"name": "cat"}).get_json()["id"]
    data = img.png(80, 60, seed=77)
    image = image_ids(ingest(alice, pid, {"a.png": data}))["a.png"]
    other = alice.post("/api/projects", json={"name": unique("twin")}).get_json()["id"]
    twin = image_ids(ingest(alice, other, {"same.png": data}))["same.png"]  # same bytes, another project
    boxes = alice.put(f"{base}/images/{image}/annotations", json={"revision": 0, "items": [
        {"class_id": cat, "x": 1, "y": 1, "w": 10, "h": 10, "source": "model", "score": 0.9},
        {"class_id": cat, "x": 20, "y": 1, "w": 10, "h": 10}]}).get_json()["items"]
    alice.put(f"{base}/annotations/{boxes[0]['id']}/review", json={"verdict": "invalid"})
    key, thumb = sql("SELECT blob_key, thumb_key FROM images WHERE id = :i", i=image)[0]
    age(runtime.blobs, key, thumb)

    res = alice.delete(f"{base}/images/{image}")
    assert res.status_code == 200
    assert res.get_json() == {"image_id": image, "annotations_deleted": 2, "reviews_deleted": 1}
    assert sql("SELECT count(*) FROM annotations WHERE image_id = :i", i=image)[0][0] == 0
    assert sql("SELECT count(*) FROM reviews WHERE annotation_id = :a", a=boxes[0]["id"])[0][0] == 0
    assert alice.get(f"{base}/images/{image}").status_code == 404
    collected = collect_blobs(runtime, grace=runtime.settings.blob_grace_seconds)
    assert runtime.blobs.exists(key) and key not in collected  # the twin in the other project still uses it
    assert alice.get(f"/api/projects/{other}/images/{twin}/file").status_code == 200
    assert alice.delete(f"/api/projects/{other}/images/{twin}").status_code == 200
    assert runtime.blobs.exists(key)  # rows only: the files wait for the collector
    assert {key, thumb} <= set(collect_blobs(runtime, grace=runtime.settings.blob_grace_seconds))
    assert not runtime.blobs.exists(key) and not runtime.blobs.exists(thumb)
    assert alice.delete(f"{base}/images/{image}").status_code == 404
