"""The detector end to end through the API with real pools, Redis and TensorFlow on the CPU: a detector trained
on generated scenes learns (validation mAP@.5 far above its untrained start), deploys to ONNX for the
`detection` task, is scored by an evaluation job exactly as COCOeval scores the downloaded model here,
pre-annotates unannotated images once (proposals that review sends into a failed-cases dataset), answers
clicks, the detect pipeline and Label Studio's whole-image predict; bad input refused."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from tests.conftest import unique
from tests.support.api import ApiClient, refused
from tests.support.http import Site
from tests.support.ingest import image_ids, ingest
from tests.support.modeltree import build
from tests.support.scenes import layout, scene

tf = pytest.importorskip("tensorflow")

from models.cocoeval import ImageTruth, evaluate  # noqa: E402
from models.predictor import Predictor, spec_from, to_input  # noqa: E402
from services.inference import decode as decode_image  # noqa: E402

LABELLED, UNLABELLED = 40, 50
CONFIG = """<View><Image name="img" value="$picture"/>
<RectangleLabels name="boxes" toName="img"><Label value="cat"/><Label value="dog"/></RectangleLabels></View>"""


def iou(a: dict, b: tuple) -> float:
    ax, ay, aw, ah = a["x"], a["y"], a["w"], a["h"]
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


@pytest.fixture(scope="module")
def det(app, tokens, workers):
    """A project with labelled and unlabelled scenes, a detection@1 dataset and a detector trained on it and
    deployed (active for `detection`). Built once for the module: training is the slow part."""
    alice = ApiClient(app.test_client(), tokens["alice"])
    pid = alice.post("/api/projects", json={"name": unique("detect")}).get_json()["id"]
    base = f"/api/projects/{pid}"
    cls = {n: alice.post(f"{base}/classes", json={"name": n}).get_json()["id"] for n in ("cat", "dog")}
    labelled = image_ids(ingest(alice, pid, {f"scene{i}.png": scene(160, 120, layout(i)) for i in range(LABELLED)}))
    for name, image in labelled.items():
        assert alice.put(f"{base}/images/{image}/annotations", json={"revision": 0, "items": [
            {"class_id": cls[c], "x": x, "y": y, "w": w, "h": h} for c, x, y, w, h in layout(int(name[5:-4]))]}
        ).status_code == 200
    lm = alice.post(f"{base}/label-maps", json={"name": "pets", "classes": [cls["cat"], cls["dog"]]}).get_json()["id"]
    dataset = build(alice, pid, lm, "detection@1", {"size": 128, "variations": 3, "crop": 0.2})
    root = alice.post(f"{base}/checkpoints", json={"architecture": "detector", "label_map_id": lm, "input_size": 96,
                                                   "name": "detector"}).get_json()
    started = alice.post(f"{base}/checkpoints/{root['id']}/train", json={
        "dataset_key": dataset["key"], "epochs": 8, "batch_size": 16, "learning_rate": 2e-3, "report_every_steps": 5})
    assert started.status_code == 202, started.get_json()
    assert alice.wait_job(started.get_json()["job"]["id"], timeout=600)["status"] == "succeeded"
    trained = alice.get(f"{base}/checkpoints/{root['id']}").get_json()
    res = alice.post(f"{base}/deployments", json={"checkpoint_id": root["id"]})
    assert res.status_code == 202, res.get_json()
    assert alice.wait_job(res.get_json()["job"]["id"], timeout=300)["status"] == "succeeded"
    deployment = alice.get(f"{base}/deployments/{res.get_json()['id']}").get_json()
    unlabelled = image_ids(ingest(alice, pid, {f"new{i}.png": scene(160, 120, layout(i))
                                               for i in range(LABELLED, LABELLED + UNLABELLED)}))  # layouts repeat after 120
    return {"pid": pid, "base": base, "cls": cls, "lm": lm, "dataset": dataset, "checkpoint": trained,
            "deployment": deployment, "labelled": labelled, "unlabelled": unlabelled}


def test_a_trained_detector_reaches_a_validation_map_far_above_its_start_and_deploys(alice, det):
    ck = det["checkpoint"]
    start, end = ck["curve"][0], ck["metrics"]
    print(f"validation mAP@.5 {start['val_map50']:.3f} -> {end['val_map50']:.3f}, "
          f"mAP@[.5:.95] {start['val_map']:.3f} -> {end['val_map']:.3f}; ONNX vs Keras "
          f"{det['deployment']['max_abs_diff']:.2e}")
    assert ck["status"] == "trained" and [e["epoch"] for e in ck["curve"]] == list(range(9))
    assert all({"val_map", "val_map50", "val_loss"} <= set(e) for e in ck["curve"])
    assert end["val_map50"] > start["val_map50"] + 0.4 and end["val_map"] > start["val_map"] + 0.2
    assert ck["task"] == "detection" and end["initial"]["val_map50"] == start["val_map50"]
    d = det["deployment"]
    assert d["status"] == "ready" and d["active"] and d["task"] == "detection" and d["max_abs_diff"] < 1e-4
    assert d["preprocessing"]["size"] == 96 and [c["name"] for c in d["label_map"]] == ["cat", "dog"]
    listed = alice.get(f"{det['base']}/deployments", query_string={"task": "detection"}).get_json()["items"]
    assert [x["id"] for x in listed] == [d["id"]]


def test_each_architecture_trains_only_on_its_handlers_datasets(alice, det):
    base = det["base"]
    suggest = build(alice, det["pid"], det["lm"], "suggest@1", {"size": 64, "regions": 2})
    detector = alice.post(f"{base}/checkpoints", json={"architecture": "detector", "label_map_id": det["lm"],
                                                       "input_size": 64}).get_json()
    refused(alice.post(f"{base}/checkpoints/{detector['id']}/train", json={"dataset_key": suggest["key"]}),
            400, "detector trains on detection@", "dataset_key")
    suggester = alice.post(f"{base}/checkpoints", json={"architecture": "box_suggester", "label_map_id": det["lm"],
                                                        "input_size": 64}).get_json()
    refused(alice.post(f"{base}/checkpoints/{suggester['id']}/train", json={"dataset_key": det["dataset"]["key"]}),
            400, "box_suggester trains on suggest@", "dataset_key")


def test_the_evaluation_job_equals_cocoeval_on_the_downloaded_model(alice, det, tmp_path):
    base, d = det["base"], det["deployment"]
    res = alice.post(f"{base}/evaluations", json={"deployment_id": d["id"], "label_map_id": det["lm"]})
    assert res.status_code == 202, res.get_json()
    assert res.get_json()["job"]["queue"] == "deployment"
    assert alice.wait_job(res.get_json()["job"]["id"], timeout=120)["status"] == "succeeded"
    served = alice.get(f"{base}/evaluations/{res.get_json()['id']}").get_json()
    assert served["status"] == "succeeded" and served["checkpoint_id"] == det["checkpoint"]["id"]

    predictor = Predictor(alice.get(f"{base}/deployments/{d['id']}/model").data)
    spec = spec_from(d["preprocessing"])
    ids = sorted(det["labelled"].items(), key=lambda kv: kv[1])
    inputs, truths = [], []
    for name, image_id in ids:
        image = decode_image(alice.get(f"{base}/images/{image_id}/file").data)
        inputs.append(to_input(image, spec))
        objects = layout(int(name[5:-4]))
        truths.append(ImageTruth(160, 120, [o[1:] for o in objects], [("cat", "dog").index(o[0]) for o in objects]))
    local = evaluate(predictor.run, [(np.stack(inputs[i:i + 16]), truths[i:i + 16]) for i in range(0, len(ids), 16)],
                     ["cat", "dog"])
    print(f"evaluation: mAP {served['metrics']['map']}, mAP@.5 {served['metrics']['map50']}; here {local['map']}")
    assert served["metrics"] == local
    assert set(served["metrics"]["per_class"]) == {"cat", "dog"} and served["metrics"]["objects"] == 2 * LABELLED

    # the checkpoint's Keras weights on the same images: the same figures up to float noise; both listed by it
    res = alice.post(f"{base}/evaluations", json={"checkpoint_id": det["checkpoint"]["id"],
                                                  "image_ids": [i for _, i in ids]})
    assert alice.wait_job(res.get_json()["job"]["id"], timeout=180)["status"] == "succeeded"
    keras_figures = alice.get(f"{base}/evaluations/{res.get_json()['id']}").get_json()["metrics"]
    assert keras_figures["map50"] == pytest.approx(local["map50"], abs=0.02)
    listed = alice.get(f"{base}/checkpoints/{det['checkpoint']['id']}/evaluations").get_json()
    assert listed["total"] >= 2 and {e["deployment_id"] for e in listed["items"]} >= {d["id"], None}


def test_evaluation_refuses_bad_input(alice, det, project):
    base = det["base"]
    refused(alice.post(f"{base}/evaluations", json={"deployment_id": det["deployment"]["id"]}), 400, "label_map_id")
    other = alice.post(f"/api/projects/{project['id']}/classes", json={"name": "cat"})
    assert other.status_code == 201
    refused(alice.post(f"{base}/evaluations", json={"checkpoint_id": det["checkpoint"]["id"],
                                                    "image_ids": [10**6]}), 404, "image_ids")


def test_pre_annotation_stores_proposals_once_and_review_feeds_a_failed_dataset(alice, det, project):
    base, d = det["base"], det["deployment"]
    refused(alice.post(f"/api/projects/{project['id']}/pre-annotations", json={"unannotated": True}),
            409, "no active detection deployment")
    refused(alice.post(f"{base}/pre-annotations", json={"unannotated": True, "threshold": 1.5}), 400, "threshold")
    refused(alice.post(f"/api/projects/{project['id']}/pre-annotations",
                       json={"image_ids": list(det["unlabelled"].values())[:3]}), 404, "image_ids")
    res = alice.post(f"{base}/pre-annotations", json={"unannotated": True, "threshold": 0.3})
    assert res.status_code == 202, res.get_json()
    assert res.get_json()["queue"] == "inference"
    first = alice.wait_job(res.get_json()["id"], timeout=120)
    assert first["status"] == "succeeded", first
    assert first["result"]["processed"] == UNLABELLED and first["result"]["proposals"] >= UNLABELLED
    again = alice.post(f"{base}/pre-annotations", json={"image_ids": list(det["unlabelled"].values())})
    second = alice.wait_job(again.get_json()["id"], timeout=60)
    assert second["result"]["proposals"] == 0 and second["result"]["skipped"] == UNLABELLED

    boxes = alice.get(f"{base}/annotations", query_string={"source": "model", "status": "proposed",
                                                           "limit": 500}).get_json()
    mine = [b for b in boxes["items"] if b["deployment_id"] == d["id"]]
    assert len(mine) == first["result"]["proposals"] and all(0.3 <= b["score"] <= 1 for b in mine)
    by_image = {}
    for b in mine:
        by_image.setdefault(b["image_id"], []).append(b)
    name = {v: k for k, v in det["unlabelled"].items()}
    hits = [max(iou(b, o[1:]) for o in layout(int(name[i][3:-4]))) for i, bs in by_image.items() for b in bs]
    assert np.median(hits) > 0.6  # the proposals sit on the objects

    # review: one proposal is wrong (corrected), it becomes a failed case and the failed subset draws on it
    wrong = mine[0]
    res = alice.put(f"{base}/annotations/{wrong['id']}/review", json={
        "verdict": "invalid", "corrected_box": {"x": 1, "y": 1, "w": 20, "h": 20}})
    assert res.status_code == 200, res.get_json()
    failed = alice.get(f"{base}/failed-cases").get_json()
    assert wrong["id"] in [f["prediction"]["id"] for f in failed["items"]]
    dataset = build(alice, det["pid"], det["lm"], "detection@1", {"size": 128})
    failed_ds = alice.post("/api/datasets", json={"project_id": det["pid"], "name": "failed", "handler": "detection@1",
                                                  "label_map_id": det["lm"], "config": {"size": 128},
                                                  "subset": "failed"})
    assert failed_ds.status_code in (200, 202), failed_ds.get_json()
    body = failed_ds.get_json()
    if failed_ds.status_code == 202:
        assert alice.wait_job(body["job"]["id"])["status"] == "succeeded"
    failed_ds = alice.get(f"/api/datasets/{body['dataset']['key']}").get_json()
    assert sum(failed_ds["manifest"]["records"].values()) == 1 and dataset["key"] != failed_ds["key"]


def test_a_click_inside_a_detected_object_is_answered_with_its_box(alice, det):
    name, image_id = next(iter(det["unlabelled"].items()))
    cat = layout(int(name[3:-4]))[0]
    point = {"x": cat[1] + cat[3] / 2, "y": cat[2] + cat[4] / 2}
    res = alice.post(f"{det['base']}/images/{image_id}/suggestions", json={"point": point})
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert body["deployment_id"] == det["deployment"]["id"] and body["class_name"] == "cat"
    assert iou(body["annotation"], cat[1:]) > 0.6 and body["region"] == {"x": 0, "y": 0, "w": 160, "h": 120}


def test_the_detect_pipeline_on_bytes_and_urls_and_label_studio_predict(client, tokens, alice, det):
    site = Site("127.0.0.2")
    site.routes["/s.png"] = scene(160, 120, layout(7))
    try:
        files = {"a.png": scene(160, 120, layout(7)), "bad.jpg": b"\xff\xd8 not a jpeg"}
        res = alice.post("/api/pipelines/detect/runs", content_type="multipart/form-data", data={
            "files": [(io.BytesIO(b), n) for n, b in files.items()], "project_id": str(det["pid"])})
        assert res.status_code == 200, res.get_json()
        good, bad = res.get_json()["items"]
        assert res.get_json()["stages"] == ["download", "preprocess", "detect"] and "error" in bad
        found = good["result"]["detections"]
        assert {f["class_name"] for f in found} >= {"cat", "dog"}
        res = alice.post("/api/pipelines/detect/runs", json={"project_id": det["pid"], "threshold": 0.3,
                                                             "items": [{"url": f"{site.url}/s.png"}]})
        assert res.status_code == 200, res.get_json()
        assert [f["class_name"] for f in res.get_json()["items"][0]["result"]["detections"]] == \
            [f["class_name"] for f in found]
        refused(alice.post("/api/pipelines/detect/runs", json={"project_id": det["pid"], "threshold": -1,
                                                               "items": [{"url": f"{site.url}/s.png"}]}), 400, "threshold")

        auth = {"Authorization": "Basic " + base64.b64encode(f"ls:{tokens['alice']}".encode()).decode()}
        ls = f"{det['base']}/label-studio"
        image_id = next(iter(det["labelled"].values()))
        tasks = [{"id": 1, "data": {"picture": f"{site.url}/s.png"}},
                 {"id": 2, "data": {"picture": f"http://localhost:8080{det['base']}/images/{image_id}/file"}}]
        res = client.post(f"{ls}/predict", headers=auth, json={"tasks": tasks, "label_config": CONFIG})
        assert res.status_code == 200, res.get_json()
        body = res.get_json()
        assert body["model_version"] == f"loopline-deployment-{det['deployment']['id']}"
        for prediction in body["results"]:
            assert len(prediction["result"]) >= 2
            for region in prediction["result"]:
                v = region["value"]
                assert region["type"] == "rectanglelabels" and v["rectanglelabels"][0] in ("cat", "dog")
                assert 0 <= v["x"] <= 100 and v["x"] + v["width"] <= 100 + 1e-6 and 0 < v["height"] <= 100
        cat = next(r["value"] for r in body["results"][0]["result"] if r["value"]["rectanglelabels"] == ["cat"])
        x, y, w, h = layout(7)[0][1:]
        assert iou({"x": cat["x"] * 1.6, "y": cat["y"] * 1.2, "w": cat["width"] * 1.6, "h": cat["height"] * 1.2},
                   (x, y, w, h)) > 0.6  # percent of the 160 x 120 image
    finally:
        site.close()


def test_an_ingest_starts_pre_annotation_when_the_project_asks(alice, det):
    base = det["base"]
    assert alice.get(f"{base}/pre-annotation").get_json() == {"after_ingest": False, "threshold": 0.5}
    refused(alice.put(f"{base}/pre-annotation", json={"threshold": 2}), 400, "threshold")
    assert alice.put(f"{base}/pre-annotation", json={"after_ingest": True, "threshold": 0.4}).get_json() == \
        {"after_ingest": True, "threshold": 0.4}
    try:
        job = ingest(alice, det["pid"], {f"late{i}.png": scene(160, 120, layout(i)) for i in range(90, 93)})
        follow = alice.wait_job(job["result"]["pre_annotation_job_id"], timeout=60)
        assert follow["status"] == "succeeded" and follow["result"]["processed"] == 3
        assert follow["result"]["threshold"] == 0.4 and follow["result"]["proposals"] >= 3
    finally:
        alice.put(f"{base}/pre-annotation", json={"after_ingest": False})


LS_CONFIG = """<View><Image name="image" value="$image"/>
<RectangleLabels name="label" toName="image"><Label value="cat"/><Label value="dog"/></RectangleLabels></View>"""


def _ls_regions(ls, task_id: int) -> list[dict]:
    return [r["value"] for p in ls.api("GET", f"/api/predictions?task={task_id}") for r in p["result"]]


def test_a_real_label_studio_gets_predictions_retries_failures_and_sends_annotations(
        alice, det, server, tokens, tmp_path):
    """Label Studio 1.23 itself with loopline as its ML backend: images uploaded to it are predicted by the
    detector (boxes in percent, in place), a task whose image could not be read is predicted when asked again
    after the cause is fixed, and an annotation saved in Label Studio arrives in loopline through the webhook."""
    from tests.support.label_studio import LabelStudio
    from tests.support.waiting import wait_until

    data = tmp_path / "ls"
    data.mkdir()
    ls = LabelStudio(data, tmp_path / "label-studio.log")
    site = Site("127.0.0.2")
    try:
        project = ls.api("POST", "/api/projects", json={"title": "loopline e2e", "label_config": LS_CONFIG})
        ls.api("POST", "/api/ml", json={"project": project["id"], "title": "loopline",
                                        "url": f"{server.url}{det['base']}/label-studio", "auth_method": "BASIC_AUTH",
                                        "basic_auth_user": "ls", "basic_auth_pass": tokens["alice"]})
        i = LABELLED + 5  # one of the project's unlabelled scenes: the same bytes are in loopline
        upload = ls.api("POST", f"/api/projects/{project['id']}/import",
                        files={"file": (f"new{i}.png", scene(160, 120, layout(i)), "image/png")})
        assert upload["task_count"] == 1
        missing = f"{site.url}/later.png"  # a task whose image cannot be read yet
        ls.api("POST", f"/api/projects/{project['id']}/import", json=[{"image": missing}])
        tasks = {("upload" if t["data"]["image"].startswith("/data/upload/") else "url"): t["id"]
                 for t in ls.api("GET", f"/api/tasks?project={project['id']}")["tasks"]}

        def retrieve():
            ls.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project['id']}",
                   json={"selectedItems": {"all": True, "excluded": []}})

        retrieve()
        regions = _ls_regions(ls, tasks["upload"])
        assert {tuple(r["rectanglelabels"]) for r in regions} >= {("cat",), ("dog",)}
        for c, x, y, w, h in layout(i):
            if c not in ("cat", "dog"):
                continue
            best = max((r for r in regions if r["rectanglelabels"] == [c]),
                       key=lambda r: iou({"x": r["x"] * 1.6, "y": r["y"] * 1.2, "w": r["width"] * 1.6,
                                          "h": r["height"] * 1.2}, (x, y, w, h)))
            assert iou({"x": best["x"] * 1.6, "y": best["y"] * 1.2, "w": best["width"] * 1.6,
                        "h": best["height"] * 1.2}, (x, y, w, h)) > 0.6  # percent of the 160 x 120 image
        assert _ls_regions(ls, tasks["url"]) == []  # not an empty prediction stored: asked again later
        site.routes["/later.png"] = scene(160, 120, layout(3))
        retrieve()
        assert _ls_regions(ls, tasks["url"]), "the task was predicted once its image could be read"

        # An annotation saved in Label Studio: its webhook (which Label Studio made when the model was connected)
        # carries loopline's token once the header is added, and the box arrives as a human box.
        hooks = ls.api("GET", f"/api/webhooks?project={project['id']}")
        assert hooks, "Label Studio makes a webhook for the connected model"
        for hook in hooks:
            ls.api("PATCH", f"/api/webhooks/{hook['id']}", json={"headers": {"Authorization": f"Bearer {tokens['alice']}"}})
        drawn = {"x": 10.0, "y": 20.0, "width": 25.0, "height": 30.0, "rotation": 0, "rectanglelabels": ["dog"]}
        ls.api("POST", f"/api/tasks/{tasks['upload']}/annotations", json={"result": [{
            "from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": drawn,
            "original_width": 160, "original_height": 120}]})
        image_id = det["unlabelled"][f"new{i}.png"]

        def human_boxes():
            boxes = alice.get(f"{det['base']}/images/{image_id}/annotations").get_json()["items"]
            return [b for b in boxes if b["source"] == "human"]

        (box,) = wait_until(human_boxes, 30, "the annotation reaches loopline through the webhook")
        assert (box["x"], box["y"], box["w"], box["h"]) == pytest.approx((16, 24, 40, 36), abs=0.5)
        assert box["class_id"] == det["cls"]["dog"]
    finally:
        site.close()
        ls.stop()
