"""A project with boxed scenes and a suggest@1 dataset, and helpers for the model tree through the API."""

from __future__ import annotations

import io

import pytest

from models.architectures import get_architecture
from tests.support.ingest import image_ids, ingest
from tests.support.scenes import layout, scene

SUGGESTER = get_architecture("box_suggester")
IMAGES = 30


@pytest.fixture(scope="module")
def scenes():
    return {f"scene{i}.png": scene(160, 120, layout(i)) for i in range(IMAGES)}


@pytest.fixture()
def labelled_pets(alice, project, workers, scenes):
    """A project with 30 boxed images and the label map [cat, dog]: enough for uploaded models."""
    pid = project["id"]
    base = f"/api/projects/{pid}"
    cls = {n: alice.post(f"{base}/classes", json={"name": n}).get_json()["id"] for n in ("cat", "dog", "bird")}
    for name, image in image_ids(ingest(alice, pid, scenes)).items():
        alice.put(f"{base}/images/{image}/annotations", json={"revision": 0, "items": [
            {"class_id": cls[c], "x": x, "y": y, "w": w, "h": h} for c, x, y, w, h in layout(int(name[5:-4]))]})
    lm = alice.post(f"{base}/label-maps", json={"name": "pets", "classes": [cls["cat"], cls["dog"]]}).get_json()["id"]
    return {"pid": pid, "base": base, "lm": lm, "cls": cls}


@pytest.fixture()
def pets(alice, labelled_pets):
    """`labelled_pets` and a ready suggest@1 dataset (64 px crops) to train on."""
    return {**labelled_pets, "dataset": build(alice, labelled_pets["pid"], labelled_pets["lm"], "suggest@1",
                                              {"size": 64, "regions": 4})}


def build(client, pid, lm, handler, config) -> dict:
    res = client.post("/api/datasets", json={"project_id": pid, "name": handler.split("@")[0], "handler": handler,
                                             "label_map_id": lm, "config": config})
    body = res.get_json()
    if res.status_code == 202:
        assert client.wait_job(body["job"]["id"])["status"] == "succeeded"
        body["dataset"] = client.get(f"/api/datasets/{body['dataset']['key']}").get_json()
    return body["dataset"]


def root(client, pets, **extra) -> dict:
    res = client.post(f"{pets['base']}/checkpoints", json={"architecture": "box_suggester", "label_map_id": pets["lm"],
                                                           "input_size": 64, "name": "root", **extra})
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def fork(client, pets, parent: dict, name: str = "child") -> dict:
    res = client.post(f"{pets['base']}/checkpoints/{parent['id']}/fork", json={"name": name})
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def train(client, pets, checkpoint: dict, **params) -> dict:
    res = client.post(f"{pets['base']}/checkpoints/{checkpoint['id']}/train",
                      json={"dataset_key": pets["dataset"]["key"], **params})
    assert res.status_code == 202, res.get_json()
    return res.get_json()


def keras_file(model, tmp_path) -> bytes:
    path = tmp_path / f"{model.name}-{id(model)}.keras"
    model.save(path)
    return path.read_bytes()


def upload(client, pets, blob: bytes, label_map_id: int, architecture: str = "box_suggester"):
    return client.post(f"{pets['base']}/checkpoints", content_type="multipart/form-data", data={
        "file": (io.BytesIO(blob), "model.keras"), "architecture": architecture, "label_map_id": str(label_map_id)})


def deployed(alice, pets, architecture: str, tmp_path) -> dict:
    """An (untrained) model of `architecture` uploaded as a root and deployed: what the pipeline plumbing needs."""
    from models import networks  # TensorFlow: only tests that deploy import it

    model = networks.build(get_architecture(architecture), 2, 64, seed=4)
    res = upload(alice, pets, keras_file(model, tmp_path), pets["lm"], architecture=architecture)
    assert res.status_code == 201, res.get_json()
    started = alice.post(f"{pets['base']}/deployments", json={"checkpoint_id": res.get_json()["id"]})
    assert started.status_code == 202, started.get_json()
    assert alice.wait_job(started.get_json()["job"]["id"], timeout=120)["status"] == "succeeded"
    return alice.get(f"{pets['base']}/deployments/{started.get_json()['id']}").get_json()
