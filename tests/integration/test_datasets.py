"""Datasets through the API, a real augmentation worker and the real consumer (tf.data): one build per
definition, cache hits, downloads with ETag and Range, bad requests, eviction."""

from __future__ import annotations

import hashlib
import io
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tensorflow as tf

from tests.conftest import unique
from tests.support.blobs import age
from tests.support.ingest import image_ids, ingest
from tests.support.scenes import COLOURS, layout, scene
from services.collector import collect_blobs
from services.datasets import evict

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/source_id": tf.io.FixedLenFeature([], tf.string),
    **{f"image/object/bbox/{k}": tf.io.VarLenFeature(tf.float32) for k in ("xmin", "xmax", "ymin", "ymax")},
    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    "image/object/class/text": tf.io.VarLenFeature(tf.string),
}


@pytest.fixture()
def labelled(alice, project, workers):
    """Six 160x120 images with a cat (red) and a dog (blue) each, boxed exactly; label map [cat, dog]."""
    pid = project["id"]
    base = f"/api/projects/{pid}"
    cls = {n: alice.post(f"{base}/classes", json={"name": n}).get_json()["id"] for n in ("cat", "dog")}
    ids = image_ids(ingest(alice, pid, {f"scene{i}.png": scene(160, 120, layout(i)) for i in range(6)}))
    truth = {}
    for name, image in ids.items():
        objects = layout(int(name[5:-4]))
        alice.put(f"{base}/images/{image}/annotations", json={"revision": 0, "items": [
            {"class_id": cls[c], "x": x, "y": y, "w": w, "h": h} for c, x, y, w, h in objects]})
        truth[image] = objects
    lm = alice.post(f"{base}/label-maps", json={"name": "pets", "classes": [cls["cat"], cls["dog"]]}).get_json()["id"]
    return {"pid": pid, "lm": lm, "truth": truth, "cls": cls}


def ask(client, labelled, handler="detection@1", name="pets", **config):
    return client.post("/api/datasets", json={"project_id": labelled["pid"], "name": name, "handler": handler,
                                              "label_map_id": labelled["lm"], "config": config})


def built(client, labelled, **kw) -> dict:
    res = ask(client, labelled, **kw)
    assert res.status_code in (200, 202), res.get_json()
    body = res.get_json()
    if res.status_code == 202:
        job = client.wait_job(body["job"]["id"])
        assert job["status"] == "succeeded", job
    return client.get(f"/api/datasets/{body['dataset']['key']}").get_json()


def unpack(client, dataset, tmp_path):
    res = client.get(f"/api/datasets/{dataset['key']}/archive")
    assert res.status_code == 200 and res.headers["X-Checksum-SHA256"] == dataset["sha256"]
    assert hashlib.sha256(res.data).hexdigest() == dataset["sha256"]
    folder = tmp_path / dataset["key"][:12]
    zipfile.ZipFile(io.BytesIO(res.data)).extractall(folder)
    return folder


def builds_of(sql, key: str) -> list:
    """The build jobs ever submitted for the dataset with this key."""
    dataset_id = sql("SELECT id FROM datasets WHERE key = :k", k=key)[0][0]
    return sql("SELECT id FROM jobs WHERE kind = 'dataset.build' AND CAST(params AS TEXT) LIKE :p",
               p=f'%"dataset_id": {dataset_id}}}%')


def parsed(files):
    return [tf.io.parse_single_example(r, FEATURES) for r in tf.data.TFRecordDataset([str(f) for f in files])]


def test_detection_shards_hold_each_object_where_its_box_says_also_when_flipped(alice, labelled, tmp_path):
    dataset = built(alice, labelled, variations=3, flip=True, validation_fraction=0.0, size=160)
    assert dataset["status"] == "ready" and dataset["handler"] == "detection@1"
    manifest = dataset["manifest"]
    assert manifest["records"] == {"train": 18, "validation": 0}
    assert manifest["objects"]["train"] == {"cat": 18, "dog": 18}
    folder = unpack(alice, dataset, tmp_path)
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
    assert "name: 'cat'" in (folder / "label_map.pbtxt").read_text()

    flipped = 0
    for ex in parsed(sorted((folder / "data").glob("train-*.tfrecord"))):
        image = tf.io.decode_image(ex["image/encoded"]).numpy()
        h, w = image.shape[:2]
        assert (w, h) == (ex["image/width"].numpy(), ex["image/height"].numpy()) == (160, 120)
        source = int(ex["image/source_id"].numpy().decode().split(":")[0])
        boxes = np.stack([tf.sparse.to_dense(ex[f"image/object/bbox/{k}"]).numpy()
                          for k in ("xmin", "ymin", "xmax", "ymax")], axis=1)
        texts = [t.decode() for t in tf.sparse.to_dense(ex["image/object/class/text"]).numpy()]
        labels = list(tf.sparse.to_dense(ex["image/object/class/label"]).numpy())
        assert labels == [{"cat": 1, "dog": 2}[t] for t in texts]
        expected = {c: np.array([x / 160, y / 120, (x + bw) / 160, (y + bh) / 120])
                    for c, x, y, bw, bh in labelled["truth"][source]}
        mirrored = {c: np.array([1 - b[2], b[1], 1 - b[0], b[3]]) for c, b in expected.items()}
        same = all(np.allclose(boxes[i], expected[t], atol=1e-3) for i, t in enumerate(texts))
        flip = all(np.allclose(boxes[i], mirrored[t], atol=1e-3) for i, t in enumerate(texts))
        assert same or flip, (texts, boxes, expected)
        flipped += flip and not same
        for (xmin, ymin, xmax, ymax), text in zip(boxes, texts, strict=True):  # the object is inside its box
            cx, cy = int((xmin + xmax) / 2 * w), int((ymin + ymax) / 2 * h)
            assert np.abs(image[cy, cx].astype(int) - COLOURS[text]).max() < 40, (text, image[cy, cx])
    assert flipped > 0  # flip is random per variation; 12 augmented records give many flips


def test_one_definition_is_built_once_and_then_served_from_the_cache(alice, bob, labelled, sql):
    first = ask(alice, labelled, variations=1)
    assert first.status_code == 202
    same = ask(bob, labelled, variations=1, flip=True, seed=0, size=512)  # defaults spelled out: same key
    assert same.status_code in (200, 202)
    assert same.get_json()["dataset"]["key"] == first.get_json()["dataset"]["key"]
    alice.wait_job(first.get_json()["job"]["id"])
    hit = ask(alice, labelled, variations=1)
    assert hit.status_code == 200 and hit.get_json()["cached"] is True and hit.get_json()["job"] is None
    key = hit.get_json()["dataset"]["key"]
    assert len(builds_of(sql, key)) == 1
    assert hit.get_json()["dataset"]["hits"] >= 1
    other = ask(alice, labelled, variations=2)
    assert other.status_code == 202 and other.get_json()["dataset"]["key"] != key
    alice.wait_job(other.get_json()["job"]["id"])

    # a change to the selected boxes is a new data revision, so a new key
    image = next(iter(labelled["truth"]))
    alice.post(f"/api/projects/{labelled['pid']}/images/{image}/annotations",
               json={"revision": 1, "class_id": labelled["cls"]["cat"], "x": 1, "y": 1, "w": 5, "h": 5})
    changed = ask(alice, labelled, variations=1)
    assert changed.status_code == 202 and changed.get_json()["dataset"]["key"] != key
    alice.wait_job(changed.get_json()["job"]["id"])


def test_fifty_concurrent_identical_requests_share_one_build(server, tokens, labelled, alice, sql):
    body = {"project_id": labelled["pid"], "name": "burst", "handler": "suggest@1", "label_map_id": labelled["lm"],
            "config": {"regions": 4}}
    headers = {"Authorization": f"Bearer {tokens['alice']}"}

    def post(_):
        return requests.post(f"{server.url}/api/datasets", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(post, range(50)))
    assert {r.status_code for r in answers} <= {200, 202}, [r.text for r in answers if r.status_code >= 300]
    keys = {r.json()["dataset"]["key"] for r in answers}
    assert len(keys) == 1
    key = keys.pop()
    builds = builds_of(sql, key)
    assert len(builds) == 1
    assert {r.json()["job"]["id"] for r in answers if r.status_code == 202} == {builds[0][0]}
    alice.wait_job(builds[0][0])
    after = post(0)
    assert after.status_code == 200 and after.json()["cached"]
    assert builds_of(sql, key) == builds  # the hit did not touch the workers


def test_download_resumes_with_range_and_counts_what_it_served(alice, labelled):
    dataset = built(alice, labelled, handler="classification@1", size=32)
    url = f"/api/datasets/{dataset['key']}/archive"
    head = alice.get(url, headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and len(head.data) == 100
    rest = alice.get(url, headers={"Range": "bytes=100-"})
    assert rest.status_code == 206
    assert hashlib.sha256(head.data + rest.data).hexdigest() == dataset["sha256"]
    full = alice.get(url)
    assert full.status_code == 200 and full.headers["ETag"].strip('"') == dataset["sha256"]
    assert alice.get(url, headers={"If-None-Match": full.headers["ETag"]}).status_code == 304
    after = alice.get(f"/api/datasets/{dataset['key']}").get_json()
    assert after["downloads"] == 1 and after["bytes_served"] == 2 * dataset["size_bytes"]


def test_bad_requests_name_what_is_wrong(alice, carol, labelled, sql):
    before = sql("SELECT count(*) FROM datasets")[0][0]
    res = ask(alice, labelled, variations=0, flip="yes", rotation=90, colour="red")
    assert res.status_code == 400
    fields = res.get_json()["error"]["fields"]
    assert set(fields) == {"config.variations", "config.flip", "config.rotation", "config.colour"}
    assert "1" in fields["config.variations"][0] and "20" in fields["config.variations"][0]
    unknown = ask(alice, labelled, handler="segmentation@1")
    assert unknown.status_code == 400 and "detection@1" in unknown.get_json()["error"]["message"]
    assert ask(alice, labelled, handler="detection@7").status_code == 400
    other = alice.post("/api/projects", json={"name": unique("other")}).get_json()["id"]
    foreign = alice.post("/api/datasets", json={"project_id": other, "name": "x", "handler": "detection@1",
                                                "label_map_id": labelled["lm"]})
    assert foreign.status_code == 400 and "label_map_id" in foreign.get_json()["error"]["fields"]  # not that project's
    assert ask(carol, labelled).status_code == 403
    assert alice.post("/api/datasets", json={"project_id": labelled["pid"], "name": "../x", "handler": "detection@1",
                                             "label_map_id": labelled["lm"]}).status_code == 400
    empty = alice.post(f"/api/projects/{labelled['pid']}/label-maps", json={
        "name": "nothing", "classes": [alice.post(f"/api/projects/{labelled['pid']}/classes",
                                                  json={"name": "unicorn"}).get_json()["id"]]}).get_json()["id"]
    none = alice.post("/api/datasets", json={"project_id": labelled["pid"], "name": "x", "handler": "detection@1",
                                             "label_map_id": empty})
    assert none.status_code == 400 and "selects nothing" in none.get_json()["error"]["message"]
    assert ask(alice, labelled, **{}).status_code == 202
    failed_only = alice.post("/api/datasets", json={"project_id": labelled["pid"], "name": "x",
                                                    "handler": "detection@1", "label_map_id": labelled["lm"],
                                                    "subset": "failed"})
    assert failed_only.status_code == 400  # no prediction was judged invalid yet
    assert sql("SELECT count(*) FROM datasets")[0][0] == before + 1
    assert alice.get("/api/datasets/" + "0" * 64).status_code == 404
    names = [h["id"] for h in alice.get("/api/handlers").get_json()["items"]]
    assert {"detection@1", "suggest@1", "classification@1"} <= set(names)


def test_eviction_removes_the_least_recently_used_rows_and_the_collector_their_files(alice, labelled, runtime):
    old = built(alice, labelled, handler="classification@1", size=32, seed=1)
    new = built(alice, labelled, handler="classification@1", size=32, seed=2)
    alice.get(f"/api/datasets/{new['key']}/archive")  # used last
    old_blob = old["sha256"]
    with runtime.sessions() as session:
        evicted = evict(runtime, quota_bytes=new["size_bytes"], keep=frozenset())
    assert old["key"] in evicted and new["key"] not in evicted
    assert alice.get(f"/api/datasets/{old['key']}").status_code == 404
    assert runtime.blobs.exists(old_blob)  # only the row went; the file waits for the collector
    age(runtime.blobs, old_blob, new["sha256"])
    collected = collect_blobs(runtime, grace=runtime.settings.blob_grace_seconds)
    assert old_blob in collected and new["sha256"] not in collected
    assert not runtime.blobs.exists(old_blob)
    assert alice.get(f"/api/datasets/{new['key']}/archive").status_code == 200


def test_the_same_key_builds_byte_identical_archives(alice, labelled):
    first = built(alice, labelled, handler="suggest@1", regions=3, seed=5)
    assert alice.delete(f"/api/datasets/{first['key']}").status_code == 204
    assert alice.get(f"/api/datasets/{first['key']}").status_code == 404
    again = built(alice, labelled, handler="suggest@1", regions=3, seed=5)
    assert again["key"] == first["key"] and again["sha256"] == first["sha256"]
    assert again["manifest"] == first["manifest"]
