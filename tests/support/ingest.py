"""Uploading images through the API and waiting for their ingest job."""

from __future__ import annotations

import io


def upload(client, pid: int, files: dict[str, bytes], path: str = "images", extra: dict | None = None):
    data = {"files": [(io.BytesIO(b), name) for name, b in files.items()], **(extra or {})}
    return client.post(f"/api/projects/{pid}/{path}", data=data, content_type="multipart/form-data")


def ingest(client, pid: int, files: dict[str, bytes], **kw) -> dict:
    """Upload, wait for the job, and return it (it must succeed)."""
    res = upload(client, pid, files, **kw)
    assert res.status_code == 202, res.get_json()
    job = client.wait_job(res.get_json()["id"])
    assert job["status"] == "succeeded", job
    return job


def outcomes(job: dict) -> dict[str, dict]:
    return {f["name"]: f for f in job["result"]["files"]}


def image_ids(job: dict) -> dict[str, int]:
    """name → image id of every accepted file."""
    return {f["name"]: f["image_id"] for f in job["result"]["files"] if f["outcome"] == "accepted"}
