"""Deploy a checkpoint trained here (ONNX, checked against Keras), ask the active box suggester for boxes
through REST and Socket.IO, roll back. Real training, deployment and inference pools."""

from __future__ import annotations

import pytest
import requests

from tests.support.api import refused
from tests.support.modeltree import fork, root, train
from tests.support.scenes import layout
from tests.support.sio import Listener

tf = pytest.importorskip("tensorflow")

from models import export, training  # noqa: E402 - after the TensorFlow check
from models.predictor import Predictor  # noqa: E402


def trained(alice, pets, parent, epochs: int, lr: float = 2e-3) -> dict:
    child = fork(alice, pets, parent)
    job = alice.wait_job(train(alice, pets, child, epochs=epochs, batch_size=16, learning_rate=lr)["job"]["id"],
                         timeout=240)
    assert job["status"] == "succeeded", job
    return alice.get(f"{pets['base']}/checkpoints/{child['id']}").get_json()


def deploy(alice, pets, checkpoint, **extra) -> dict:
    res = alice.post(f"{pets['base']}/deployments", json={"checkpoint_id": checkpoint["id"], **extra})
    assert res.status_code == 202, res.get_json()
    job = alice.wait_job(res.get_json()["job"]["id"], timeout=120)
    assert job["status"] == "succeeded", job
    return alice.get(f"{pets['base']}/deployments/{res.get_json()['id']}").get_json()


def iou(a: dict, b: tuple) -> float:
    bx, by, bw, bh = b
    ix = max(0.0, min(a["x"] + a["w"], bx + bw) - max(a["x"], bx))
    iy = max(0.0, min(a["y"] + a["h"], by + bh) - max(a["y"], by))
    inter = ix * iy
    return inter / (a["w"] * a["h"] + bw * bh - inter)


def images_by_scene(alice, pets) -> dict[int, dict]:
    items = alice.get(f"{pets['base']}/images", query_string={"limit": 100}).get_json()["items"]
    return {int(i["original_name"][5:-4]): i for i in items}


def test_deploy_suggest_and_roll_back(alice, anonymous, pets, server, tokens, tmp_path, sql):
    base = pets["base"]
    first = trained(alice, pets, root(alice, pets), epochs=4)
    d1 = deploy(alice, pets, first)
    assert d1["status"] == "ready" and d1["active"] and d1["task"] == "suggestion"
    assert d1["max_abs_diff"] is not None and d1["max_abs_diff"] <= 1e-4
    assert [c["name"] for c in d1["label_map"]] == ["cat", "dog"] and d1["preprocessing"]["size"] == 64

    # the stored ONNX model agrees with the checkpoint's Keras model, checked here too
    (tmp_path / "m.keras").write_bytes(alice.get(f"{base}/checkpoints/{first['id']}/weights").data)
    model = training.load(str(tmp_path / "m.keras"), compile=False)
    onnx = alice.get(f"{base}/deployments/{d1['id']}/model")
    assert onnx.status_code == 200
    samples = export.sample_inputs(64, n=4, seed=9)
    keras_out, onnx_out = model.predict(samples, verbose=0), Predictor(onnx.data).run(samples)
    assert max(float(abs(onnx_out[k] - keras_out[k]).max()) for k in keras_out) <= 1e-4

    # a suggestion round trip: a rough region around a known object gives a tight box of the right class
    scene_no, image = next(iter(sorted(images_by_scene(alice, pets).items())))
    name, x, y, w, h = layout(scene_no)[1]  # the dog
    rough = {"x": max(0, x - 0.3 * w), "y": max(0, y - 0.2 * h), "w": 1.5 * w, "h": 1.4 * h}
    rough["w"], rough["h"] = min(rough["w"], 160 - rough["x"]), min(rough["h"], 120 - rough["y"])
    res = alice.post(f"{base}/images/{image['id']}/suggestions", json={"region": rough})
    assert res.status_code == 201, res.get_json()
    answer = res.get_json()
    box = answer["annotation"]
    print(f"suggested {box} for the dog at {(x, y, w, h)}: IoU {iou(box, (x, y, w, h)):.2f}, {answer['timings']}")
    assert answer["class_name"] == "dog" and box["class_id"] == pets["cls"]["dog"] and 0 < box["score"] <= 1
    assert 0 <= box["x"] and box["x"] + box["w"] <= 160 and 0 <= box["y"] and box["y"] + box["h"] <= 120
    assert iou(box, (x, y, w, h)) > 0.5
    assert box["source"] == "model" and box["status"] == "proposed" and box["deployment_id"] == d1["id"]
    assert {"queue_wait_ms", "image_load_ms", "model_ms", "worker_ms", "store_ms", "total_ms"} <= set(answer["timings"])
    assert answer["revision"] == image["revision"] + 1
    assert sql("SELECT status, source FROM annotations WHERE id = :id", id=box["id"]) == [("proposed", "model")]

    # the same through Socket.IO
    listener = Listener(server.url, tokens["alice"])
    try:
        via_socket = listener.sio.call("suggest", {"project": pets["pid"], "image": image["id"], "region": rough},
                                       timeout=10)
        refused = listener.sio.call("suggest", {"project": pets["pid"], "image": image["id"],
                                                "region": {**rough, "w": 0}}, timeout=10)
    finally:
        listener.close()
    assert via_socket["deployment_id"] == d1["id"] and via_socket["annotation"]["id"] != box["id"]
    assert via_socket["annotation"]["x"] == pytest.approx(box["x"], abs=1e-3)
    assert refused["error"]["status"] == 400 and "size" in refused["error"]["message"]

    # a second deployment becomes active; rolling back makes the next request use the first again
    second = trained(alice, pets, first, epochs=1, lr=5e-3)
    d2 = deploy(alice, pets, second)
    listed = {d["id"]: d["active"] for d in alice.get(f"{base}/deployments").get_json()["items"]}
    assert listed == {d1["id"]: False, d2["id"]: True}
    now = alice.post(f"{base}/images/{image['id']}/suggestions", json={"region": rough}).get_json()
    assert now["deployment_id"] == d2["id"] and now["annotation"]["x"] != pytest.approx(box["x"], abs=1e-6)
    back = alice.post(f"{base}/deployments/{d1['id']}/activate")
    assert back.status_code == 200 and back.get_json()["active"]
    again = alice.post(f"{base}/images/{image['id']}/suggestions", json={"region": rough}).get_json()
    assert again["deployment_id"] == d1["id"] and again["annotation"]["x"] == pytest.approx(box["x"], abs=1e-3)

    # /metrics (no token): requests per deployment and where their time went, in this process (REST calls
    # above) and summed over the gunicorn processes (the Socket.IO call)
    here = metric_values(anonymous.get("/metrics").get_data(as_text=True))
    ok = 'kind="suggestion",outcome="ok"'
    assert here[f'loopline_inference_requests_total{{deployment="{d1["id"]}",{ok}}}'] >= 2
    assert here[f'loopline_inference_requests_total{{deployment="{d2["id"]}",{ok}}}'] >= 1
    for name in ("queue_wait", "image_load", "model"):
        assert here[f'loopline_inference_{name}_seconds_count{{deployment="{d1["id"]}",kind="suggestion"}}'] >= 2
    served = metric_values(requests.get(f"{server.url}/metrics", timeout=5).text)
    assert served[f'loopline_inference_requests_total{{deployment="{d1["id"]}",{ok}}}'] == 1


def metric_values(text: str) -> dict[str, float]:
    """{'name{labels sorted}': value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            if "{" in name:
                base, labels = name[:-1].split("{", 1)
                name = base + "{" + ",".join(sorted(labels.split(","))) + "}"
            out[name] = float(value)
    return out


def test_bad_suggestion_and_deployment_requests(alice, bob, carol, labelled_pets, sql):
    base = labelled_pets["base"]
    image = next(iter(images_by_scene(alice, labelled_pets).values()))
    url = f"{base}/images/{image['id']}/suggestions"
    before = sql("SELECT COUNT(*) FROM annotations")[0][0]

    refused(alice.post(url, json={"region": {"x": 10, "y": 10, "w": 20, "h": 20}}), 409, "no active suggestion",
            "deployments")
    refused(alice.post(url, json={"region": {"x": 150, "y": 10, "w": 40, "h": 20}}), 400, "leaves", "160x120")
    refused(alice.post(url, json={"region": {"x": 10, "y": 10, "w": 0, "h": 20}}), 400, "zero")
    refused(alice.post(url, json={"region": {"x": -5, "y": 10, "w": 10, "h": 20}}), 400, "leaves")
    refused(alice.post(url, json={"point": {"x": 500, "y": 10}}), 400, "outside")
    refused(alice.post(url, json={"point": {"x": 5, "y": 10}, "region": {"x": 1, "y": 1, "w": 5, "h": 5}}), 400,
            "exactly one")
    refused(alice.post(url, json={}), 400, "exactly one")
    refused(alice.post(url, json={"region": {"x": 1, "y": 1, "w": "big", "h": 5}}), 400, "region")
    refused(carol.post(url, json={"region": {"x": 1, "y": 1, "w": 5, "h": 5}}), 403)
    refused(alice.post(f"{base}/images/999999/suggestions", json={"region": {"x": 1, "y": 1, "w": 5, "h": 5}}), 404,
            "image 999999 not found")
    other = alice.post("/api/projects", json={"name": f"other-{image['id']}-{before}"}).get_json()["id"]
    region = {"region": {"x": 1, "y": 1, "w": 5, "h": 5}}
    refused(alice.post(f"/api/projects/{other}/images/{image['id']}/suggestions", json=region), 404,
            f"image {image['id']} not found in project {other}")  # an image of another project
    refused(bob.post(f"/api/projects/{other}/images/{image['id']}/suggestions", json=region), 404,
            f"project {other} not found")  # not a member
    refused(alice.post(f"/api/projects/999999/images/{image['id']}/suggestions", json=region), 404, "project 999999")
    assert sql("SELECT COUNT(*) FROM annotations")[0][0] == before

    fresh = root(alice, labelled_pets)
    refused(alice.post(f"{base}/deployments", json={"checkpoint_id": fresh["id"]}), 409, "no weights")
    refused(alice.post(f"{base}/deployments", json={"checkpoint_id": 999999}), 400, "checkpoint 999999")
    refused(alice.post(f"{base}/deployments", json={"checkpoint_id": "1"}), 400, "checkpoint_id")
    refused(alice.post(f"{base}/deployments/999999/activate"), 404, "deployment 999999")
    refused(carol.post(f"{base}/deployments", json={"checkpoint_id": fresh["id"]}), 403)
    assert sql("SELECT COUNT(*) FROM deployments WHERE project_id = :p", p=labelled_pets["pid"])[0][0] == 0


def test_proposal_for_an_image_deleted_meanwhile_is_404_and_writes_nothing(app, tokens, sql):
    """The image may be deleted while the model runs: the revision UPDATE finds no row, nothing is inserted."""
    from flask import g

    from api.errors import ApiError
    from api.suggestions import _store_proposal
    from store.accounts import caller_for_token

    before = sql("SELECT COUNT(*) FROM annotations")[0][0]
    with app.test_request_context():
        from api.extensions import db

        g.user = caller_for_token(db.session, tokens["alice"])
        with pytest.raises(ApiError) as refused:
            _store_proposal(1, 999999, {"class_id": 1, "score": 0.5, "deployment_id": None,
                                        "x": 1.0, "y": 1.0, "w": 2.0, "h": 2.0})
    assert refused.value.status == 404 and "image 999999 not found in project 1" in refused.value.message
    assert sql("SELECT COUNT(*) FROM annotations")[0][0] == before
