"""Pipelines on the inference pool: images as bytes or URLs (from a local server the test starts) through
download → preprocess → classify | suggest, chained by the server or stage by stage; bad input refused."""

from __future__ import annotations

import io

import pytest

from tests.support.api import refused
from tests.support.http import Site
from tests.support.modeltree import deployed
from tests.support.scenes import layout, scene

tf = pytest.importorskip("tensorflow")



def run(client, name, *, files=None, **body):
    if files is not None:
        data = {"files": [(io.BytesIO(b), n) for n, b in files.items()],
                **{k: (",".join(v) if isinstance(v, list) else str(v)) for k, v in body.items()}}
        return client.post(f"/api/pipelines/{name}/runs", data=data, content_type="multipart/form-data")
    return client.post(f"/api/pipelines/{name}/runs", json=body)


@pytest.fixture()
def site():
    s = Site("127.0.0.2")  # allowed by the test settings; 127.0.0.1 stays refused
    yield s
    s.close()


def test_classify_and_suggest_pipelines_with_bytes_urls_and_hybrid_sequencing(alice, labelled_pets, site, tmp_path):
    classifier = deployed(alice, labelled_pets, "classifier", tmp_path)
    suggester = deployed(alice, labelled_pets, "box_suggester", tmp_path)
    picture = scene(160, 120, layout(3))
    site.routes["/a.png"] = picture
    private = Site("127.0.0.1")
    private.routes["/b.png"] = picture
    try:
        pid = labelled_pets["pid"]
        # bytes, one good and one corrupt: the batch answers both
        res = run(alice, "classify", files={"good.png": picture, "bad.jpg": b"\xff\xd8\xff not a jpeg"}, project_id=pid)
        assert res.status_code == 200, res.get_json()
        body = res.get_json()
        assert body["stages"] == ["download", "preprocess", "classify"] and body["deployment_id"] == classifier["id"]
        good, bad = body["items"]
        assert good["result"]["class_name"] in ("cat", "dog") and good["name"] == "good.png"
        assert sum(good["result"]["scores"].values()) == pytest.approx(1, abs=1e-4)
        assert bad["error"]["reason"] in ("corrupt", "unsupported_format") and "result" not in bad
        assert {"preprocess_ms", "classify_ms", "model_ms", "total_ms"} <= set(body["timings"])

        # URLs: the download stage fetches from the local server; a private address is refused
        res = run(alice, "classify", project_id=pid, items=[{"url": f"{site.url}/a.png"}, {"url": f"{private.url}/b.png"}])
        assert res.status_code == 200, res.get_json()
        fetched, refused = res.get_json()["items"]
        assert site.requests == ["/a.png"] and private.requests == []
        assert refused["error"]["reason"] == "address" and "127.0.0.1" in refused["error"]["message"]
        assert fetched["result"]["scores"] == pytest.approx(good["result"]["scores"], abs=1e-5)  # same image

        # hybrid sequencing: the client runs the download stage alone, or hands its output on to the next stages
        alone = run(alice, "download", project_id=pid, items=[{"url": f"{site.url}/a.png"}]).get_json()
        assert alone["stages"] == ["download"] and alone["items"][0]["result"] == {"fetched": True}
        handed = run(alice, "download", project_id=pid, items=[{"url": f"{site.url}/a.png"}],
                     then=["preprocess", "classify"]).get_json()
        assert handed["stages"] == ["download", "preprocess", "classify"]
        assert handed["items"][0]["result"]["scores"] == pytest.approx(good["result"]["scores"], abs=1e-5)

        # suggest: a region of the uploaded image in, a box inside the image out, from the suggester deployment
        name, x, y, w, h = layout(3)[0]
        region = {"x": max(0, x - 10), "y": max(0, y - 10), "w": w + 20, "h": h + 20}
        res = run(alice, "suggest", files={"s.png": picture}, project_id=pid, regions=f"[{json_region(region)}]")
        assert res.status_code == 200, res.get_json()
        out = res.get_json()
        box = out["items"][0]["result"]["box"]
        assert out["deployment_id"] == suggester["id"]
        assert region["x"] <= box["x"] and box["x"] + box["w"] <= region["x"] + region["w"] + 1e-6
        assert region["y"] <= box["y"] and box["y"] + box["h"] <= region["y"] + region["h"] + 1e-6
    finally:
        private.close()


def json_region(r: dict) -> str:
    return "{" + ", ".join(f'"{k}": {v}' for k, v in r.items()) + "}"


def test_bad_pipeline_requests_are_refused_with_the_reason(alice, carol, labelled_pets, site, tmp_path):
    pid = labelled_pets["pid"]
    picture = scene(160, 120, layout(1))
    item = [{"url": "http://127.0.0.2:9/x.png"}]

    refused(run(alice, "classify", project_id=pid, items=item), 409, "no active classification deployment")
    refused(run(alice, "sharpen", project_id=pid, items=item), 404, "sharpen", "classify, suggest")
    refused(run(alice, "download", project_id=pid, items=item, then=["resize"]), 400, "unknown stages", "resize")
    refused(run(alice, "classify", project_id=pid, items=item, then=["download"]), 400, "download", "takes urls")
    refused(run(alice, "preprocess", project_id=pid, files={"a.png": picture}), 400, "classify, suggest or detect")
    refused(run(alice, "classify", project_id=pid, items=[]), 400, "items")
    refused(run(alice, "classify", project_id=pid, items=[{"url": "ftp://example.org/a.png"}]), 400, "http")
    refused(run(carol, "classify", project_id=pid, items=item), 403)
    refused(alice.post("/api/pipelines/classify/runs", data="x", content_type="text/plain"), 415)

    deployed(alice, labelled_pets, "classifier", tmp_path)
    only_bad = refused(run(alice, "classify", project_id=pid, files={"bad.png": b"\x89PNG\r\n\x1a\n broken"}), 422,
                       "no item could be processed")
    assert only_bad["items"][0]["error"]["reason"] in ("corrupt", "truncated")
    refused(run(alice, "classify", project_id=pid, items=[{"url": "http://127.0.0.1:9/x.png"}]), 422, "127.0.0.1")
    listed = alice.get("/api/pipelines").get_json()
    assert listed["pipelines"]["classify"] == ["download", "preprocess", "classify"]
    assert listed["stages"]["preprocess"] == {"takes": "image", "gives": "tensor"}
