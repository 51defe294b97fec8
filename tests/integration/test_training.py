"""The model tree and training through the API, real workers (augmentation and training pools), real
TensorFlow on the CPU: images with known boxes → suggest@1 dataset → root → fork → train → lineage."""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from tests.support.api import refused
from tests.support.modeltree import SUGGESTER, build, fork, keras_file, root, train, upload
from tests.support.sio import Listener
from tests.support.waiting import wait_until

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from models import data, networks, training  # noqa: E402 - after the TensorFlow check
from models.architectures import get_architecture  # noqa: E402


def validation_iou(client, pets, weights: bytes, tmp_path) -> float:
    """Evaluate downloaded weights on the downloaded dataset's validation split, in this process."""
    archive = client.get(f"/api/datasets/{pets['dataset']['key']}/archive").data
    folder = tmp_path / "dataset"
    zipfile.ZipFile(io.BytesIO(archive)).extractall(folder)
    files = sorted(str(p) for p in (folder / "data").glob("validation-*"))
    (tmp_path / "w.keras").write_bytes(weights)
    model = training.load(str(tmp_path / "w.keras"), compile=True)
    records = pets["dataset"]["manifest"]["records"]["validation"]
    return training.evaluate(model, data.make_dataset(files, SUGGESTER, SUGGESTER.spec(64), 32, records=records,
                                                      shuffle=False))["val_box_iou"]


def test_fork_and_train_learns_boxes_with_lineage_and_live_progress(alice, pets, server, tokens, tmp_path):
    base = pets["base"]
    listed = {a["name"]: a for a in alice.get("/api/architectures").get_json()["items"]}
    assert listed["box_suggester"]["handlers"] == ["suggest"] and listed["classifier"]["task"] == "classification"
    parent = root(alice, pets, seed=3)
    assert parent["status"] == "fresh" and parent["has_weights"] is False and parent["classes"] == ["cat", "dog"]
    assert parent["preprocessing"]["size"] == 64 and parent["source"] == "architecture"
    child = fork(alice, pets, parent)
    assert child["parent_id"] == parent["id"] and child["seed"] == 3 and child["source"] == "fork"

    listener = Listener(server.url, tokens["alice"])
    try:
        assert listener.join(project=pets["pid"])["ok"]
        started = train(alice, pets, child, epochs=4, batch_size=16, learning_rate=2e-3, report_every_steps=3)
        assert started["status"] == "training" and started["job"]["queue"] == "training"
        job = alice.wait_job(started["job"]["id"], timeout=240)
        assert job["status"] == "succeeded", job
        listener.wait_for(job["id"], "succeeded")
        events = [e for e in listener.events if e["id"] == job["id"] and e["status"] == "running"]
    finally:
        listener.close()

    steps = [e["details"]["step"] for e in events if "step" in e["details"]]
    assert steps and {"loss", "box_iou", "class_scores_accuracy", "samples_per_s", "eta_s"} <= set(steps[-1])
    assert steps[-1]["epoch"] == 4 and steps[-1]["step"] == steps[-1]["steps"]
    epochs = [e["details"]["epoch_summary"]["epoch"] for e in events if re.match(r"epoch \d+/4 done", e["message"])]
    assert epochs == [1, 2, 3, 4]
    assert any(e["details"].get("device", {}).get("kind") in ("CPU", "GPU") for e in events)

    trained = alice.get(f"{base}/checkpoints/{child['id']}").get_json()
    untrained_iou, trained_iou = trained["curve"][0]["val_box_iou"], trained["metrics"]["val_box_iou"]
    print(f"validation box IoU: untrained root {untrained_iou:.3f}, trained fork {trained_iou:.3f}")
    assert trained["status"] == "trained" and trained["has_weights"] and trained["trained_at"]
    assert [e["epoch"] for e in trained["curve"]] == [0, 1, 2, 3, 4]
    assert trained_iou > 0.5 and trained_iou > untrained_iou + 0.3
    assert trained["metrics"]["initial"]["val_box_iou"] == untrained_iou and trained["metrics"]["epochs_trained"] == 4
    assert trained["device"]["kind"] in ("CPU", "GPU")

    lineage = trained["lineage"]
    assert trained["dataset_key"] == pets["dataset"]["key"]
    assert lineage["dataset"]["handler"] == "suggest@1" and lineage["dataset"]["config"]["size"] == 64
    assert lineage["label_map"]["id"] == pets["lm"]
    assert [c["name"] for c in lineage["label_map"]["classes"]] == ["cat", "dog"]
    assert [a["id"] for a in lineage["ancestors"]] == [parent["id"]] and lineage["created_by"]["name"] == "alice"
    assert trained["params"]["epochs"] == 4 and trained["params"]["learning_rate"] == 2e-3
    assert alice.get(f"{base}/checkpoints/{parent['id']}").get_json()["lineage"]["children"] == [child["id"]]

    # the weights file is a real Keras model whose validation IoU is the one recorded
    weights = alice.get(f"{base}/checkpoints/{child['id']}/weights")
    assert weights.status_code == 200 and weights.headers["ETag"]
    assert validation_iou(alice, pets, weights.data, tmp_path) == pytest.approx(trained_iou, abs=1e-4)

    # immutable: training it again is refused; a fork of it starts from its weights
    again = alice.post(f"{base}/checkpoints/{child['id']}/train", json={"dataset_key": pets["dataset"]["key"]})
    assert again.status_code == 409 and "immutable" in again.get_json()["error"]["message"]
    grandchild = fork(alice, pets, trained, "grandchild")
    assert grandchild["has_weights"] and grandchild["status"] == "fresh"

    tree = alice.get(f"{base}/checkpoints/tree").get_json()["roots"]
    assert [(r["id"], [c["id"] for c in r["children"]]) for r in tree] == [(parent["id"], [child["id"]])]
    assert [c["id"] for c in tree[0]["children"][0]["children"]] == [grandchild["id"]]
    by_class = alice.get(f"{base}/checkpoints", query_string={"class_id": pets["cls"]["dog"]}).get_json()
    assert {c["id"] for c in by_class["items"]} == {parent["id"], child["id"], grandchild["id"]}
    assert alice.get(f"{base}/checkpoints", query_string={"class_id": pets["cls"]["bird"]}).get_json()["total"] == 0
    by_data = alice.get(f"{base}/checkpoints", query_string={"dataset_key": pets["dataset"]["key"]}).get_json()
    assert [c["id"] for c in by_data["items"]] == [child["id"]]


def test_uploaded_root_with_another_label_map_trains_only_with_a_new_head(alice, pets, tmp_path):
    base = pets["base"]
    three = alice.post(f"{base}/label-maps", json={"name": "three", "classes": [
        pets["cls"]["cat"], pets["cls"]["dog"], pets["cls"]["bird"]]}).get_json()["id"]
    res = upload(alice, pets, keras_file(networks.build(SUGGESTER, 3, 64, seed=5), tmp_path), three)
    assert res.status_code == 201, res.get_json()
    uploaded = res.get_json()
    assert uploaded["source"] == "upload" and uploaded["has_weights"] and uploaded["classes"] == ["cat", "dog", "bird"]
    assert uploaded["input_size"] == 64

    refused = alice.post(f"{base}/checkpoints/{uploaded['id']}/train", json={"dataset_key": pets["dataset"]["key"]})
    body = refused.get_json()["error"]
    assert refused.status_code == 409 and body["code"] == "label_map_mismatch" and "reinit_head" in body["message"]
    assert alice.get(f"{base}/checkpoints/{uploaded['id']}").get_json()["status"] == "fresh"  # nothing written

    started = train(alice, pets, uploaded, epochs=1, batch_size=32, reinit_head=True)
    job = alice.wait_job(started["job"]["id"], timeout=180)
    assert job["status"] == "succeeded", job
    done = alice.get(f"{base}/checkpoints/{uploaded['id']}").get_json()
    assert done["classes"] == ["cat", "dog"] and done["label_map_id"] == pets["lm"] and done["status"] == "trained"
    (tmp_path / "new-head.keras").write_bytes(alice.get(f"{base}/checkpoints/{uploaded['id']}/weights").data)
    assert networks.output_classes(training.load(str(tmp_path / "new-head.keras"), compile=False)) == 2


def test_cancel_stops_between_steps_and_keeps_the_last_epoch(alice, pets, sql):
    child = fork(alice, pets, root(alice, pets))
    started = train(alice, pets, child, epochs=500, batch_size=4, report_every_steps=1)
    job_id = started["job"]["id"]
    base = pets["base"]

    def an_epoch_done() -> bool:
        assert alice.get(f"/api/jobs/{job_id}").get_json()["status"] in ("queued", "running")
        return alice.get(f"{base}/checkpoints/{child['id']}").get_json()["epochs_done"] >= 1

    wait_until(an_epoch_done, 240, "epoch 1 never finished", every=0.05)
    assert alice.post(f"/api/jobs/{job_id}/cancel").status_code == 202
    job = alice.wait_job(job_id, timeout=20)
    assert job["status"] == "cancelled", job
    cancelled = alice.get(f"{base}/checkpoints/{child['id']}").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["has_weights"] and 1 <= cancelled["epochs_done"] < 500
    (weights_key, state), = sql("SELECT weights_key, CAST(state AS TEXT) FROM checkpoints WHERE id = :id", id=child["id"])
    assert weights_key and weights_key in state  # the last finished epoch's file
    again = alice.post(f"{base}/checkpoints/{child['id']}/train", json={"dataset_key": pets["dataset"]["key"]})
    assert again.status_code == 409 and "fork it" in again.get_json()["error"]["message"]
    assert fork(alice, pets, cancelled)["has_weights"]


def test_bad_input_is_refused_and_names_the_problem(alice, carol, pets, sql, tmp_path):
    base = pets["base"]
    ck = fork(alice, pets, root(alice, pets))
    before = sql("SELECT COUNT(*) FROM checkpoints")[0][0]

    url = f"{base}/checkpoints/{ck['id']}/train"
    refused(alice.post(url, json={"dataset_key": "0" * 64}), 400, "dataset", "not found")
    refused(alice.post(url, json={"dataset_key": "nope"}), 400, "dataset_key")
    refused(alice.post(url, json={"dataset_key": pets["dataset"]["key"], "epochs": -1}), 400, "epochs")
    refused(alice.post(url, json={"dataset_key": pets["dataset"]["key"], "learning_rate": 0}), 400, "learning_rate")
    refused(alice.post(url, json={"dataset_key": pets["dataset"]["key"], "batch_size": "8"}), 400, "batch_size")
    refused(alice.post(url, json={"dataset_key": pets["dataset"]["key"], "early_stopping": {"patience": 0}}), 400,
            "patience")
    detection = build(alice, pets["pid"], pets["lm"], "detection@1", {"size": 96, "variations": 1})
    refused(alice.post(url, json={"dataset_key": detection["key"]}), 400, "detection@1", "suggest@")
    refused(carol.post(url, json={"dataset_key": pets["dataset"]["key"]}), 403)
    refused(alice.post(f"{base}/checkpoints/999999/train", json={"dataset_key": pets["dataset"]["key"]}), 404,
            "checkpoint 999999")

    make = f"{base}/checkpoints"
    refused(alice.post(make, json={"architecture": "resnet", "label_map_id": pets["lm"]}), 400, "box_suggester")
    refused(alice.post(make, json={"architecture": "box_suggester", "label_map_id": pets["lm"], "input_size": 100}),
            400, "input_size", "multiple of 16")
    refused(alice.post(make, json={"architecture": "box_suggester", "label_map_id": 999999}), 400, "label map")
    refused(alice.post(make, json={"architecture": "box_suggester"}), 400, "label_map_id")
    good = keras_file(networks.build(SUGGESTER, 2, 64), tmp_path)
    refused(upload(alice, pets, good[: len(good) // 2], pets["lm"]), 400, "truncated")
    refused(upload(alice, pets, b"not a model", pets["lm"]), 400, "not a readable .keras file")
    classifier = keras_file(networks.build(get_architecture("classifier"), 2, 64), tmp_path)
    refused(upload(alice, pets, classifier, pets["lm"]), 400, "outputs", "box")
    refused(upload(alice, pets, keras_file(networks.build(SUGGESTER, 5, 64), tmp_path), pets["lm"]), 400, "2 classes")
    refused(upload(alice, pets, good, pets["lm"], architecture="vgg"), 400, "architecture")
    assert sql("SELECT COUNT(*) FROM checkpoints")[0][0] == before  # nothing half-written
    assert alice.get(f"{base}/checkpoints/{ck['id']}").get_json()["status"] == "fresh"
    fresh_weights = alice.get(f"{base}/checkpoints/{ck['id']}/weights")
    refused(fresh_weights, 409, "seed")
