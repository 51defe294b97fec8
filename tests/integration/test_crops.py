"""Class examples cut from their images: the crop route's pixels, sizes, ETag and 304, and who may read it."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.conftest import unique
from tests.support.api import refused
from tests.support.ingest import image_ids, ingest


def _halves(width=400, height=200) -> bytes:
    """Left half red, right half blue (PNG): a crop of either half shows one colour."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 2] = (255, 0, 0)
    a[:, width // 2:] = (0, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def test_a_box_is_cut_out_scaled_and_revalidated_by_its_etag(alice, carol, project, workers):
    pid = project["id"]
    base = f"/api/projects/{pid}"
    image = image_ids(ingest(alice, pid, {"halves.png": _halves()}))["halves.png"]
    cat = alice.post(f"{base}/classes", json={"name": "cat"}).get_json()["id"]
    made = alice.post(f"{base}/images/{image}/annotations",
                      json={"revision": 0, "class_id": cat, "x": 250, "y": 50, "w": 100, "h": 50}).get_json()
    aid = made["annotation"]["id"]

    res = carol.get(f"{base}/annotations/{aid}/crop?size=64")  # a viewer may look
    assert res.status_code == 200 and res.mimetype == "image/jpeg"
    assert res.headers["Cache-Control"] == "private, no-cache"
    crop = Image.open(io.BytesIO(res.data))
    assert crop.size == (64, 32)  # 120 x 60 with the 10% margin, longest side 64
    r, g, b = np.asarray(crop, dtype=float).reshape(-1, 3).mean(axis=0)
    assert b > 200 and r < 40, (r, g, b)  # the blue half only
    etag = res.headers["ETag"]
    again = carol.get(f"{base}/annotations/{aid}/crop?size=64", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.data

    small = alice.get(f"{base}/annotations/{aid}/crop?size=512")  # never upscaled past the box's pixels
    assert Image.open(io.BytesIO(small.data)).size == (120, 60)
    assert small.headers["ETag"] != etag

    alice.patch(f"{base}/annotations/{aid}", json={"revision": made["revision"], "x": 10})  # moved: a new ETag
    moved = carol.get(f"{base}/annotations/{aid}/crop?size=64", headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["ETag"] != etag
    r, g, b = np.asarray(Image.open(io.BytesIO(moved.data)), dtype=float).reshape(-1, 3).mean(axis=0)
    assert r > 200 and b < 40, (r, g, b)

    refused(alice.get(f"{base}/annotations/{aid}/crop?size=8"), 400, "size")
    refused(alice.get(f"{base}/annotations/{aid}/crop?size=big"), 400)
    refused(alice.get(f"{base}/annotations/999999/crop"), 404)
    other = alice.post("/api/projects", json={"name": unique("other")}).get_json()["id"]
    refused(alice.get(f"/api/projects/{other}/annotations/{aid}/crop"), 404)  # not that project's box
