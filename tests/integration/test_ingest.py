"""Uploads through the real API and a real augmentation worker: every good file lands, every bad one is
rejected with its reason, and nothing stops the others."""

from __future__ import annotations

import io
import os
import stat
import zipfile

import pytest
from PIL import Image

from tests.support import images as img
from tests.support.http import Site
from tests.support.ingest import ingest, outcomes, upload


def symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok/inner.png", img.png(seed=41))
        zf.writestr("../escape.jpg", img.jpeg(seed=42))
        zf.writestr("/etc/absolute.jpg", img.jpeg(seed=43))
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("__MACOSX/._inner.png", b"resource fork")
        zf.writestr("notes.txt", b"not an image")
    return buf.getvalue()


def test_good_files_land_and_each_bad_one_is_rejected_with_its_reason(alice, project, workers, settings, sql):
    pid = project["id"]
    photo = img.photograph()
    files = {
        "hopper.jpg": photo,
        "drawing.png": img.png(seed=1),
        "lossy.webp": img.webp(seed=2),
        "sideways.jpg": img.rotated_jpeg(60, 40),
        "again.jpg": photo,  # same bytes in the same upload
        "corrupt.jpg": b"\x00" * 16 + os.urandom(2000),
        "truncated.jpg": img.truncated_jpeg(),
        "bomb.png": img.pixel_bomb(8000),
        "huge.jpg": b"\xff\xd8" + os.urandom(settings.max_image_bytes),
        "old.bmp": img.bmp(),
        "photos.zip": symlink_zip(),
    }
    job = ingest(alice, pid, files)
    got = outcomes(job)
    assert {n: f["outcome"] for n, f in got.items()} == {
        "hopper.jpg": "accepted", "drawing.png": "accepted", "lossy.webp": "accepted", "sideways.jpg": "accepted",
        "again.jpg": "duplicate", "corrupt.jpg": "rejected", "truncated.jpg": "rejected", "bomb.png": "rejected",
        "huge.jpg": "rejected", "old.bmp": "rejected",
        "photos.zip/ok/inner.png": "accepted", "photos.zip/../escape.jpg": "rejected",
        "photos.zip//etc/absolute.jpg": "rejected", "photos.zip/link.jpg": "rejected",
        "photos.zip/__MACOSX/._inner.png": "skipped", "photos.zip/notes.txt": "rejected",
    }
    reasons = {n: f.get("reason") for n, f in got.items() if f["outcome"] == "rejected"}
    assert reasons == {
        "corrupt.jpg": "corrupt", "truncated.jpg": "truncated", "bomb.png": "pixel_limit", "huge.jpg": "too_large",
        "old.bmp": "unsupported_format", "photos.zip/../escape.jpg": "unsafe_path",
        "photos.zip//etc/absolute.jpg": "unsafe_path", "photos.zip/link.jpg": "unsafe_path",
        "photos.zip/notes.txt": "corrupt",
    }
    assert all(got[n]["message"] for n in reasons)
    assert "JPEG" in got["old.bmp"]["message"]  # the message lists what is accepted
    assert got["again.jpg"]["image_id"] == got["hopper.jpg"]["image_id"]
    assert job["result"]["accepted"] == 5 and job["result"]["duplicate"] == 1 and job["result"]["rejected"] == 9

    listed = alice.get(f"/api/projects/{pid}/images?job_id={job['id']}").get_json()
    assert listed["total"] == 5
    by_name = {i["original_name"]: i for i in listed["items"]}
    hopper = Image.open(io.BytesIO(photo))
    assert (by_name["hopper.jpg"]["width"], by_name["hopper.jpg"]["height"]) == hopper.size
    assert (by_name["sideways.jpg"]["width"], by_name["sideways.jpg"]["height"]) == (40, 60)  # EXIF applied
    assert by_name["lossy.webp"]["source_format"] == "WEBP" and by_name["lossy.webp"]["format"] == "JPEG"
    assert by_name["drawing.png"]["format"] == "PNG"

    # the stored original is what was uploaded when nothing needed changing; the thumbnail is small
    res = alice.get(by_name["hopper.jpg"]["file_url"])
    assert res.status_code == 200 and res.data == photo and res.mimetype == "image/jpeg"
    assert "immutable" in res.headers["Cache-Control"] and res.headers["ETag"]
    again = alice.get(by_name["hopper.jpg"]["file_url"], headers={"If-None-Match": res.headers["ETag"]})
    assert again.status_code == 304
    part = alice.get(by_name["hopper.jpg"]["file_url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == photo[10:20]
    thumb = Image.open(io.BytesIO(alice.get(by_name["hopper.jpg"]["thumbnail_url"]).data))
    assert max(thumb.size) == settings.thumbnail_size and thumb.mode == "RGB"
    sideways = Image.open(io.BytesIO(alice.get(by_name["sideways.jpg"]["file_url"]).data))
    assert sideways.size == (40, 60) and sideways.getexif().get(0x0112) in (None, 1)

    assert list(settings.staging_dir.iterdir()) == []  # the job cleared its staging folder
    assert sql("SELECT count(*) FROM images WHERE project_id = :p", p=pid)[0][0] == 5


def test_the_same_bytes_uploaded_later_are_a_duplicate(alice, project, workers):
    pid = project["id"]
    first = outcomes(ingest(alice, pid, {"a.png": img.png(seed=7)}))["a.png"]
    second = outcomes(ingest(alice, pid, {"b.png": img.png(seed=7)}))["b.png"]
    assert second["outcome"] == "duplicate" and second["image_id"] == first["image_id"]
    assert f"image {first['image_id']}" in second["message"]


@pytest.fixture()
def sites():
    allowed, private = Site("127.0.0.2"), Site("127.0.0.1")
    yield allowed, private
    allowed.close()
    private.close()


def test_urls_are_fetched_but_private_addresses_are_refused_also_after_a_redirect(alice, project, workers, sites):
    allowed, private = sites
    allowed.routes["/good.jpg"] = img.jpeg(seed=11)
    allowed.routes["/to-loopback"] = ("redirect", f"{private.url}/secret.jpg")
    allowed.routes["/to-metadata"] = ("redirect", "http://169.254.169.254/latest/meta-data/")
    private.routes["/secret.jpg"] = img.jpeg(seed=12)
    urls = [f"{allowed.url}/good.jpg", f"{private.url}/secret.jpg", "http://169.254.169.254/latest/meta-data/",
            f"{allowed.url}/to-loopback", f"{allowed.url}/to-metadata", f"{allowed.url}/missing.jpg"]
    res = alice.post(f"/api/projects/{project['id']}/images", json={"urls": urls})
    assert res.status_code == 202, res.get_json()
    job = alice.wait_job(res.get_json()["id"])
    got = outcomes(job)
    assert got[urls[0]]["outcome"] == "accepted"
    for url in urls[1:5]:
        assert (got[url]["outcome"], got[url]["reason"]) == ("rejected", "fetch_address"), got[url]
    assert "loopback" in got[urls[1]]["message"] and "link-local" in got[urls[2]]["message"]
    assert got[urls[5]]["reason"] == "fetch_http_status"
    assert private.requests == []  # the private server was never reached


def test_malformed_urls_are_a_400_naming_each(alice, project):
    res = alice.post(f"/api/projects/{project['id']}/images",
                     json={"urls": ["https://example.org/a.jpg", "ftp://example.org/b.jpg", "not a url"]})
    assert res.status_code == 400
    fields = res.get_json()["error"]["fields"]
    assert set(fields) == {"urls.1", "urls.2"}


@pytest.mark.parametrize("body, status", [
    ({}, 400), ({"urls": []}, 400), ({"urls": "http://x"}, 400), ({"urls": ["http://x"], "extra": 1}, 400),
])
def test_bad_url_requests(alice, project, body, status):
    assert alice.post(f"/api/projects/{project['id']}/images", json=body).status_code == status


def test_upload_needs_files_and_the_annotator_role(alice, carol, project, sql):
    pid = project["id"]
    before = sql("SELECT count(*) FROM jobs")[0][0]
    empty = alice.post(f"/api/projects/{pid}/images", data={}, content_type="multipart/form-data")
    assert empty.status_code == 400 and "files" in empty.get_json()["error"]["message"]
    wrong = alice.post(f"/api/projects/{pid}/images", data={"pictures": (io.BytesIO(b"x"), "a.jpg")},
                       content_type="multipart/form-data")
    assert wrong.status_code == 400 and "pictures" in wrong.get_json()["error"]["fields"]
    assert upload(carol, pid, {"a.jpg": img.jpeg()}).status_code == 403
    assert alice.post(f"/api/projects/{pid}/images", data=b"raw", content_type="image/jpeg").status_code == 415
    assert sql("SELECT count(*) FROM jobs")[0][0] == before  # nothing was enqueued


def test_progress_events_carry_each_files_outcome_as_it_is_done(alice, project, workers, server, tokens):
    """Over more than two stored groups, the outcomes the `running` events carried (with their place in the
    list) are, together, the result's list: a page following the job shows every file before it ends."""
    from tests.support.sio import Listener

    listener = Listener(server.url, tokens["alice"])
    try:
        assert listener.join(project=project["id"])["ok"]
        files = {f"p{i:03d}.png": img.png(24, 16, seed=i) for i in range(70)}
        files["broken.png"] = img.truncated_jpeg()
        job = ingest(alice, project["id"], files)
        listener.wait_for(job["id"], "succeeded")
    finally:
        listener.close()
    live: dict[int, dict] = {}
    for event in listener.events:
        if event["id"] == job["id"] and event["status"] == "running":
            for entry in event["details"].get("recent", []):
                live[entry.pop("index")] = entry
    files_in_result = job["result"]["files"]
    assert sorted(live) == list(range(len(files_in_result)))
    assert [live[i] for i in range(len(files_in_result))] == files_in_result
    assert {f["outcome"] for f in files_in_result} == {"accepted", "rejected"}
