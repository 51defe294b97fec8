"""Label Studio's ML backend protocol over the active deployment, as Label Studio calls it (Basic auth with
the token as password): health, setup, predict for plain and interactive (a drawn rectangle) tasks."""

from __future__ import annotations

import base64

import pytest

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
    bad = client.post(f"{base}/predict", headers=auth, json={"tasks": [{"id": 1, "data": {}}], "label_config": CONFIG})
    assert bad.status_code == 400 and "data.picture" in bad.get_json()["error"]["message"]
