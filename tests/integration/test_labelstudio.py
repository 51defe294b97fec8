"""Label Studio's ML backend protocol over the active deployment, as Label Studio calls it (Basic auth with
the token as password): health, setup, predict for plain and interactive (a drawn rectangle) tasks."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.labelstudio import run_recipe
from tests.support.api import refused
from tests.support.http import Site
from tests.support.modeltree import deployed
from tests.support.scenes import layout, scene

pytest.importorskip("tensorflow")

CONFIG = """<View><Image name="img" value="$picture"/>
<RectangleLabels name="boxes" toName="img"><Label value="cat"/><Label value="dog"/></RectangleLabels></View>"""


def basic(token: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"labelstudio:{token}".encode()).decode()}


def test_label_studio_gets_boxes_from_the_active_suggester(client, tokens, alice, labelled_pets, tmp_path):
    base = f"/api/projects/{labelled_pets['pid']}/label-studio"
    auth = basic(tokens["alice"])
    assert client.get(f"{base}/health").status_code == 401
    assert client.post(f"{base}/setup", json={"schema": CONFIG}, headers=auth).status_code == 409  # nothing deployed
    suggester = deployed(alice, labelled_pets, "box_suggester", tmp_path)
    health = client.get(f"{base}/health", headers=auth).get_json()
    assert health["status"] == "UP" and health["active_deployments"]["suggestion"] == suggester["id"]
    setup = client.post(f"{base}/setup", json={"project": "7.1700000000", "schema": CONFIG}, headers=auth)
    assert setup.get_json() == {"model_version": f"loopline-deployment-{suggester['id']}"}

    site = Site("127.0.0.2")
    site.routes["/p.png"] = scene(160, 120, layout(2))
    image_id = alice.get(f"{labelled_pets['base']}/images", query_string={"limit": 1}).get_json()["items"][0]["id"]
    try:
        tasks = [{"id": 1, "data": {"picture": f"{site.url}/p.png"}},
                 {"id": 2, "data": {"picture": f"http://localhost:8080/api/projects/{labelled_pets['pid']}/images/"
                                               f"{image_id}/file"}}]
        # whole images are the detector's: with only a suggester deployed, predict says so instead of a
        # meaningless box over the middle of each image (tests/integration/test_detection.py has the detector)
        res = client.post(f"{base}/predict", headers=auth, json={"tasks": tasks, "label_config": CONFIG,
                                                                 "project": "7.1700000000"})
        refused(res, 409, "no active detection deployment", "deploy a trained detector")

        # interactive: the annotator drew a rectangle; the box comes back inside it
        drawn = {"x": 50.0, "y": 40.0, "width": 30.0, "height": 45.0}
        context = {"result": [{"type": "rectanglelabels", "value": {**drawn, "rectanglelabels": ["dog"]}}]}
        res = client.post(f"{base}/predict", headers=auth, json={"tasks": tasks[:1], "label_config": CONFIG,
                                                                 "params": {"context": context}})
        assert res.status_code == 200, res.get_json()
        body = res.get_json()
        assert body["model_version"] == f"loopline-deployment-{suggester['id']}" and len(body["results"]) == 1
        (region,) = body["results"][0]["result"]
        assert region["type"] == "rectanglelabels" and region["from_name"] == "boxes" and region["to_name"] == "img"
        assert region["value"]["rectanglelabels"][0] in ("cat", "dog") and 0 <= body["results"][0]["score"] <= 1
        assert (region["original_width"], region["original_height"]) == (160, 120)
        assert site.requests == ["/p.png"]
        value = region["value"]
        assert drawn["x"] - 1e-6 <= value["x"] and value["x"] + value["width"] <= drawn["x"] + drawn["width"] + 1e-6
        assert drawn["y"] - 1e-6 <= value["y"] and value["y"] + value["height"] <= drawn["y"] + drawn["height"] + 1e-6
    finally:
        site.close()

    bad = client.post(f"{base}/predict", headers=auth, json={"tasks": [], "label_config": CONFIG})
    assert bad.status_code == 400 and "tasks" in bad.get_json()["error"]["message"]
    bad = client.post(f"{base}/predict", headers=auth, json={"tasks": tasks, "label_config": "<View><Text/>"})
    assert bad.status_code == 400 and "xml" in bad.get_json()["error"]["message"].lower()
    # a task without an image is answered without a `result`: Label Studio stores nothing and asks again
    res = client.post(f"{base}/predict", headers=auth, json={"tasks": [{"id": 1, "data": {}}], "label_config": CONFIG,
                                                             "params": {"context": context}})
    assert res.status_code == 200 and "result" not in res.get_json()["results"][0]
    assert "data.picture" in res.get_json()["results"][0]["error"]


class FakeLabelStudio:
    """Label Studio's file server as far as loopline sees it: /data/upload/<p>/<name> behind `Token <key>`,
    on 127.0.0.1 (a loopback address the SSRF rules refuse); it records each request's Authorization."""

    def __init__(self, key: str):
        self.files: dict[str, object] = {}
        self.seen: list[tuple[str, str | None]] = []
        ls = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                ls.seen.append((self.path, self.headers.get("Authorization")))
                body = ls.files.get(self.path)
                if self.headers.get("Authorization") != f"Token {key}":
                    self.send_error(401)
                elif isinstance(body, tuple):
                    self.send_response(302)
                    self.send_header("Location", body[1])
                    self.end_headers()
                elif body is None:
                    self.send_error(404)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_label_studio_files_are_read_with_its_key_and_failures_are_asked_again(
        client, tokens, alice, labelled_pets, tmp_path, caplog):
    pid, base = labelled_pets["pid"], f"/api/projects/{labelled_pets['pid']}/label-studio"
    auth = basic(tokens["alice"])
    deployed(alice, labelled_pets, "box_suggester", tmp_path)
    ls, secret = FakeLabelStudio("s3cret-key-123"), "s3cret-key-123"
    elsewhere = Site("127.0.0.2")
    try:
        ls.files["/data/upload/3/p.png"] = scene(160, 120, layout(1))
        ls.files["/data/upload/3/moved.png"] = ("redirect", f"{elsewhere.url}/moved.png")
        elsewhere.routes["/moved.png"] = scene(160, 120, layout(2))
        drawn = {"x": 10.0, "y": 10.0, "width": 80.0, "height": 80.0}
        params = {"context": {"result": [{"type": "rectanglelabels", "value": {**drawn, "rectanglelabels": ["cat"]}}]}}
        tasks = [{"id": 11, "data": {"picture": "/data/upload/3/p.png"}}]

        # before /setup: a relative URL cannot be resolved; the task gets no `result` and is asked again later
        res = client.post(f"{base}/predict", headers=auth, json={"tasks": tasks, "label_config": CONFIG,
                                                                 "params": params})
        (first,) = res.get_json()["results"]
        assert res.status_code == 200 and "result" not in first and "relative" in first["error"], first
        assert "no_label_studio_url" in caplog.text and "task 11" in caplog.text
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'loopline_label_studio_unpredicted_tasks_total{reason="no_label_studio_url"}' in metrics

        setup = client.post(f"{base}/setup", headers=auth, json={
            "project": "3.1700000000", "schema": CONFIG, "hostname": ls.url, "access_token": secret})
        assert setup.status_code == 200
        link = client.get(f"{base}/connection", headers=auth).get_json()
        assert link == {"url": ls.url, "ls_project": 3, "api_key_set": True}
        res = client.post(f"{base}/predict", headers=auth, json={"tasks": tasks + [
            {"id": 12, "data": {"picture": f"{ls.url}/data/upload/3/moved.png"}},
            {"id": 13, "data": {"picture": "/data/upload/3/gone.png"}}], "label_config": CONFIG, "params": params})
        ok, moved, gone = res.get_json()["results"]
        assert ok["result"][0]["original_width"] == 160 and ok["result"][0]["type"] == "rectanglelabels"
        assert moved["result"][0]["original_width"] == 160  # redirected off Label Studio: fetched without the key
        assert "result" not in gone and "404" in gone["error"]
        assert ("/data/upload/3/p.png", f"Token {secret}") in ls.seen and elsewhere.requests == ["/moved.png"]

        # the allowance is that one origin: the same host on another port stays refused, and the key is never shown
        other = FakeLabelStudio(secret)
        try:
            other.files["/x.png"] = scene(160, 120, layout(1))
            res = client.post(f"{base}/predict", headers=auth, json={"tasks": [
                {"id": 14, "data": {"picture": f"{other.url}/x.png"}}], "label_config": CONFIG, "params": params})
            assert "loopback" in res.get_json()["results"][0]["error"] and other.seen == []
        finally:
            other.close()
        assert secret not in caplog.text and secret not in client.get(f"{base}/connection", headers=auth).get_data(
            as_text=True)
        refused(client.put(f"{base}/connection", headers=auth, json={"url": "ftp://x"}), 400, "url")
        assert client.put(f"{base}/connection", headers=basic(tokens["bob"]), json={"url": ls.url}).status_code in (
            403, 404)
    finally:
        ls.close()
        elsewhere.close()


def event(action: str, ann_id: int, url: str, results: list, ls_project: int = 3) -> dict:
    """An ANNOTATION_CREATED / _UPDATED payload as Label Studio 1.23 sends it (the fields loopline reads)."""
    return {"action": action, "project": {"id": ls_project, "label_config": CONFIG},
            "task": {"id": 100 + ann_id, "data": {"picture": url}, "project": ls_project},
            "annotation": {"id": ann_id, "task": 100 + ann_id, "project": ls_project, "completed_by": 1,
                           "result": results, "was_cancelled": False}}


def rect(x, y, w, h, label="dog") -> dict:
    return {"id": "r1", "type": "rectanglelabels", "from_name": "boxes", "to_name": "img", "original_width": 160,
            "original_height": 120, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def test_webhook_imports_annotations_once_and_refuses_other_projects(client, tokens, alice, labelled_pets):
    pid, base = labelled_pets["pid"], f"/api/projects/{labelled_pets['pid']}/label-studio"
    auth = basic(tokens["alice"])
    image = alice.get(f"{labelled_pets['base']}/images", query_string={"limit": 1}).get_json()["items"][0]
    url = f"http://localhost:8080/api/projects/{pid}/images/{image['id']}/file"
    before = alice.get(f"{labelled_pets['base']}/images/{image['id']}/annotations").get_json()
    assert client.put(f"{base}/connection", headers=auth, json={"ls_project": 3}).status_code == 200

    created = event("ANNOTATION_CREATED", 7, url, [rect(25.0, 50.0, 50.0, 25.0)])
    res = client.post(f"{base}/webhook", headers=auth, json=created)
    assert res.status_code == 200, res.get_json()
    done = res.get_json()
    assert done["status"] == "imported" and len(done["box_ids"]) == 1
    boxes = alice.get(f"{labelled_pets['base']}/images/{image['id']}/annotations").get_json()
    new = [b for b in boxes["items"] if b["id"] in done["box_ids"]]
    assert len(boxes["items"]) == len(before["items"]) + 1 and boxes["revision"] == before["revision"] + 1
    assert (new[0]["x"], new[0]["y"], new[0]["w"], new[0]["h"]) == (40.0, 60.0, 80.0, 30.0)  # percent of 160x120
    assert new[0]["source"] == "human" and new[0]["status"] == "accepted"
    assert new[0]["class_id"] == labelled_pets["cls"]["dog"]

    again = client.post(f"{base}/webhook", headers=auth, json=created).get_json()  # the same event: nothing changes
    assert again["status"] == "unchanged" and again["box_ids"] == done["box_ids"]
    assert alice.get(f"{labelled_pets['base']}/images/{image['id']}/annotations").get_json() == boxes

    updated = event("ANNOTATION_UPDATED", 7, url, [rect(0.0, 0.0, 10.0, 10.0, "cat"), rect(50, 50, 10, 10)])
    res = client.post(f"{base}/webhook", headers=auth, json=updated).get_json()
    assert res["status"] == "imported" and len(res["box_ids"]) == 2 and res["revision"] == boxes["revision"] + 1
    after = alice.get(f"{labelled_pets['base']}/images/{image['id']}/annotations").get_json()
    assert len(after["items"]) == len(before["items"]) + 2 and not set(done["box_ids"]) & {b["id"] for b in after["items"]}

    refused(client.post(f"{base}/webhook", headers=auth, json=event("ANNOTATION_CREATED", 8, url, [], ls_project=9)),
            400, "project 9", "project 3")
    refused(client.post(f"{base}/webhook", headers=auth, json={"action": "ANNOTATION_CREATED", "task": {}}), 400,
            "annotation")
    refused(client.post(f"{base}/webhook", headers=auth, json=event("ANNOTATION_CREATED", 8, url, [rect(
        1, 1, 5, 5, "zebra")])), 400, "zebra")
    refused(client.post(f"{base}/webhook", headers=auth, json=event("ANNOTATION_CREATED", 8, url, [{
        "type": "rectanglelabels", "value": {"x": "a"}}])), 400, "annotation", "not a valid number")
    refused(client.post(f"{base}/webhook", headers=auth, json=event("ANNOTATION_CREATED", 8, url, [{
        "type": "rectanglelabels", "value": {"x": 1}}])), 400, "rectangle needs")
    refused(client.post(f"{base}/webhook", headers=auth, json={"project": {"id": 3}}), 400, "action")
    refused(client.post(f"{base}/webhook", headers=auth, json=event(
        "ANNOTATION_CREATED", 8, f"http://localhost:8080/api/projects/{pid}/images/999999/file", [])), 404, "not in")
    assert alice.get(f"{labelled_pets['base']}/images/{image['id']}/annotations").get_json() == after
    other = client.post(f"{base}/webhook", headers=auth, json={"action": "PROJECT_UPDATED", "project": {"id": 3}})
    assert other.status_code == 200 and other.get_json()["status"] == "ignored"
    assert client.post(f"{base}/webhook", json=created).status_code == 401

    # Start training without a recipe: 409 saying how to define one; with one: a job, never inside the request
    refused(client.post(f"{base}/webhook", headers=auth, json={"action": "START_TRAINING", "project": {"id": 3}}),
            409, "recipe", "/label-studio/training")
    versions = client.get(f"{base}/versions", headers=auth)
    assert versions.status_code == 200 and versions.get_json()["versions"] == []


def test_start_training_runs_the_projects_recipe_as_a_job(app, client, tokens, alice, labelled_pets, tmp_path):
    pid, base = labelled_pets["pid"], f"/api/projects/{labelled_pets['pid']}/label-studio"
    auth = basic(tokens["alice"])
    deployment = deployed(alice, labelled_pets, "box_suggester", tmp_path)
    recipe = {"dataset": {"name": "ls-suggest", "handler": "suggest@1", "label_map_id": labelled_pets["lm"],
                          "config": {"size": 64, "regions": 4}},
              "checkpoint_id": deployment["checkpoint_id"], "epochs": 1}
    refused(client.put(f"{base}/training", headers=auth, json={**recipe, "checkpoint_id": 999999}), 400, "checkpoint")
    refused(client.put(f"{base}/training", headers=auth, json={**recipe, "dataset": {
        **recipe["dataset"], "handler": "nope@1"}}), 400, "handler")
    saved = client.put(f"{base}/training", headers=auth, json=recipe)
    assert saved.status_code == 200 and saved.get_json()["recipe"]["epochs"] == 1

    res = client.post(f"{base}/webhook", headers=auth, json={"action": "START_TRAINING", "project": {"id": 3}})
    assert res.status_code == 202 and res.get_json()["status"] == "started", res.get_json()
    job = alice.wait_job(res.get_json()["job"]["id"], timeout=300)
    assert job["status"] == "succeeded" and job["kind"] == "labelstudio.train", job
    training = alice.wait_job(job["result"]["training_job_id"], timeout=300)
    assert training["status"] == "succeeded", training
    trained = alice.get(f"/api/projects/{pid}/checkpoints/{job['result']['checkpoint_id']}").get_json()
    assert trained["status"] == "trained" and trained["dataset_key"] == job["result"]["dataset_key"]

    # The same job delivered again after its commit (a worker killed before it reported the end): the run it
    # started is found, no second fork and no second training job are made.
    forks = len(alice.get(f"/api/projects/{pid}/checkpoints?limit=500").get_json()["items"])
    again = run_recipe(_Delivery(app, job), app.extensions["celery"], recipe, job["user_id"])
    assert again == job["result"]
    assert len(alice.get(f"/api/projects/{pid}/checkpoints?limit=500").get_json()["items"]) == forks


class _Delivery:
    """What run_recipe reads of its job context: the job's id and project, the runtime, progress and cancel."""

    def __init__(self, app, job):
        self.id, self.project_id, self.rt = job["id"], job["project_id"], app.extensions["loopline.runtime"]

    def progress(self, *args, **kwargs):
        pass

    def check_cancelled(self):
        pass
