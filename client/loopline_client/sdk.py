"""`Loopline`: the whole human-in-the-loop cycle of one loopline server, over its REST API and Socket.IO.

Every method is one call (or a few) of the API and returns its decoded JSON, typed in
`loopline_client.types`; a refused call raises `LooplineError` with the API's status, code, message and
fields, no answer at all raises `Unreachable` (a `LooplineError` with status 0). Methods that start a job
return at once with the job, or with `wait=True` follow it to its end: over Socket.IO when it connects,
with polling every `poll_interval` seconds regardless (a socket that never connects or silently drops
only slows the wait down), and raise `JobFailed` when it failed or was cancelled.

Datasets reach the disk verified: the zip is resumed with `Range` + `If-Range` (a changed file restarts
it), checked against the server's SHA-256, unpacked beside the destination and renamed into place (a
reader never sees half a folder), and every file is checked against the manifest. A folder already there
that verifies is returned as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import secrets
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from tqdm import tqdm

from loopline_client import types as t
from loopline_client.errors import (ChecksumMismatch, DatasetBuildFailed, JobFailed, LooplineError, UnsafeArchive,
                                    Unreachable)

TERMINAL = ("succeeded", "failed", "cancelled")
CHUNK = 1 << 20
PAGE = 500  # the API's largest page
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".zip"}
Box4 = tuple[float, float, float, float]
PathLike = str | os.PathLike


class Loopline:
    """A client for one API. `poll_interval`: seconds between job polls, which run even while
    Socket.IO is connected; `socketio_url` defaults to `url` (a proxy may serve it elsewhere)."""

    def __init__(self, url: str, token: str, *, timeout: float = 30, poll_interval: float = 3.0,
                 socketio_url: str | None = None):
        self.url = url.rstrip("/")
        self.token, self.timeout, self.poll_interval = token, timeout, poll_interval
        self.socketio_url = (socketio_url or self.url).rstrip("/")
        self.waited_with: str | None = None  # "socketio" or "polling": how the last wait listened
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "User-Agent": "loopline-client"})

    @classmethod
    def from_config(cls, **kw) -> Loopline:
        """The server and token `lloop login` saved (LOOPLINE_URL / LOOPLINE_TOKEN override them)."""
        from loopline_client import config

        saved = config.load()
        url = os.environ.get("LOOPLINE_URL") or saved.get("url")
        token = os.environ.get("LOOPLINE_TOKEN") or saved.get("token")
        if not url or not token:
            raise LooplineError(401, "not_logged_in", f"no server saved in {config.config_path()}: "
                                                      f"run `lloop login URL` or set LOOPLINE_URL and LOOPLINE_TOKEN")
        return cls(url, token, **kw)

    # --- the wire ------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kw) -> requests.Response:
        """One call; LooplineError for an error answer, Unreachable for none."""
        kw.setdefault("timeout", self.timeout)
        try:
            res = self.http.request(method, self.url + path, **kw)
        except requests.Timeout as exc:
            raise Unreachable(f"{self.url} did not answer {method} {path} within {kw['timeout']:g}s ({exc})") from None
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}") from None
        if res.status_code >= 400:
            raise _error(res)
        return res

    def _json(self, method: str, path: str, **kw) -> Any:
        res = self.request(method, path, **kw)
        if res.status_code == 204 or not res.content:
            return None
        try:
            return res.json()
        except ValueError:
            raise LooplineError(res.status_code, "not_json", f"{method} {path} answered something other than "
                                                             f"JSON: is {self.url} a loopline server?") from None

    def _pages(self, path: str, params: dict | None = None, limit: int | None = None) -> Iterator[dict]:
        """Every item of a paginated list (pages of 500), at most `limit`."""
        params = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        offset, seen = 0, 0
        while True:
            page = self._json("GET", path, params={**params, "limit": PAGE, "offset": offset})
            for item in page["items"]:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            offset += len(page["items"])
            if not page["items"] or offset >= page.get("total", 0):
                return

    # --- who and what ------------------------------------------------------------------------
    def health(self) -> dict:
        return self._json("GET", "/api/health")

    def me(self) -> t.Me:
        return self._json("GET", "/api/me")

    # --- projects ------------------------------------------------------------------------------
    def projects(self) -> list[t.Project]:
        return list(self._pages("/api/projects"))

    def project(self, project_id: int) -> t.Project:
        return self._json("GET", f"/api/projects/{int(project_id)}")

    def find_project(self, ref: int | str) -> t.Project:
        """A project by id or by exact name (404 `not_found` when none of yours has it)."""
        if isinstance(ref, int) or str(ref).isdigit():
            return self.project(int(ref))
        found = [p for p in self.projects() if p["name"] == ref]
        if not found:
            raise LooplineError(404, "not_found", f"none of your projects is named {ref!r}")
        return found[0]

    def create_project(self, name: str, description: str | None = None) -> t.Project:
        return self._json("POST", "/api/projects", json=_body(name=name, description=description))

    def update_project(self, project_id: int, **changes) -> t.Project:
        return self._json("PATCH", f"/api/projects/{project_id}", json=changes)

    def delete_project(self, project_id: int) -> None:
        self._json("DELETE", f"/api/projects/{project_id}")

    def members(self, project_id: int) -> list[dict]:
        return list(self._pages(f"/api/projects/{project_id}/members"))

    def set_member(self, project_id: int, user_name: str, role: str) -> dict:
        return self._json("PUT", f"/api/projects/{project_id}/members/{user_name}", json={"role": role})

    def remove_member(self, project_id: int, user_name: str) -> None:
        self._json("DELETE", f"/api/projects/{project_id}/members/{user_name}")

    # --- classes and label maps ----------------------------------------------------------------
    def classes(self, project_id: int, group: str | None = None) -> list[t.LabelClass]:
        return list(self._pages(f"/api/projects/{project_id}/classes", {"group": group}))

    def create_class(self, project_id: int, name: str, group: str | None = None, color: str | None = None,
                     description: str | None = None) -> t.LabelClass:
        return self._json("POST", f"/api/projects/{project_id}/classes",
                          json=_body(name=name, group=group, color=color, description=description))

    def update_class(self, project_id: int, class_id: int, **changes) -> t.LabelClass:
        return self._json("PATCH", f"/api/projects/{project_id}/classes/{class_id}", json=changes)

    def delete_class(self, project_id: int, class_id: int) -> None:
        self._json("DELETE", f"/api/projects/{project_id}/classes/{class_id}")

    def class_ids(self, project_id: int, classes: Iterable[int | str]) -> list[int]:
        """Class ids for ids or names (a name the project lacks: 400 naming it)."""
        wanted = list(classes)
        by_name = {c["name"]: c["id"] for c in self.classes(project_id)} if any(
            isinstance(c, str) and not c.isdigit() for c in wanted) else {}
        out, missing = [], []
        for c in wanted:
            if isinstance(c, int) or c.isdigit():
                out.append(int(c))
            elif c in by_name:
                out.append(by_name[c])
            else:
                missing.append(c)
        if missing:
            raise LooplineError(400, "unknown_class", f"project {project_id} has no class named "
                                                      f"{', '.join(map(repr, missing))}", {"classes": missing})
        return out

    def label_maps(self, project_id: int) -> list[t.LabelMap]:
        return list(self._pages(f"/api/projects/{project_id}/label-maps"))

    def label_map(self, project_id: int, map_id: int) -> t.LabelMap:
        return self._json("GET", f"/api/projects/{project_id}/label-maps/{map_id}")

    def create_label_map(self, project_id: int, name: str, classes: Sequence[int | str],
                         description: str | None = None) -> t.LabelMap:
        """A label map of these classes (ids or names) in this order: class i of the map is classes[i - 1]."""
        return self._json("POST", f"/api/projects/{project_id}/label-maps", json=_body(
            name=name, classes=self.class_ids(project_id, classes), description=description))

    def update_label_map(self, project_id: int, map_id: int, **changes) -> t.LabelMap:
        if "classes" in changes:
            changes["classes"] = self.class_ids(project_id, changes["classes"])
        return self._json("PATCH", f"/api/projects/{project_id}/label-maps/{map_id}", json=changes)

    def delete_label_map(self, project_id: int, map_id: int) -> None:
        self._json("DELETE", f"/api/projects/{project_id}/label-maps/{map_id}")

    def distribution(self, project_id: int, map_id: int, subset: str = "all") -> dict:
        return self._json("GET", f"/api/projects/{project_id}/label-maps/{map_id}/distribution",
                          params={"subset": subset})

    def class_stats(self, project_id: int, status: str | None = None) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/stats/classes", params=_body(status=status))

    # --- images --------------------------------------------------------------------------------
    def image_formats(self, project_id: int) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/images/formats")

    def images(self, project_id: int, limit: int | None = None, **filters) -> Iterator[t.Image]:
        """Images, newest first; filters: annotated, class_id, source, status, reviewed, failed, job_id, order."""
        return self._pages(f"/api/projects/{project_id}/images", filters, limit)

    def image(self, project_id: int, image_id: int) -> t.Image:
        return self._json("GET", f"/api/projects/{project_id}/images/{image_id}")

    def delete_image(self, project_id: int, image_id: int) -> dict:
        return self._json("DELETE", f"/api/projects/{project_id}/images/{image_id}")

    def download_image(self, project_id: int, image_id: int, dest: PathLike, thumbnail: bool = False) -> Path:
        kind = "thumbnail" if thumbnail else "file"
        return self._save(f"/api/projects/{project_id}/images/{image_id}/{kind}", Path(dest), progress=False)

    def upload(self, project_id: int, paths: Iterable[PathLike] = (), urls: Iterable[str] = (), *,
               wait: bool = True, timeout: float = 3600, progress: bool = False) -> t.Upload:
        """Upload image files, zips of them, whole folders (walked for images and zips) and URLs.
        Files go in as few requests as the server's request limit allows (one ingest job each); with
        `wait` each job is followed to its end and `files` lists every file's outcome (accepted,
        duplicate, rejected with a reason). A file too large for any request is reported rejected here."""
        files = _collect(paths)
        urls = list(urls)
        if not files and not urls:
            raise LooplineError(400, "nothing_to_upload", "no image, zip or URL to upload", {"files": ["empty"]})
        limits = self.image_formats(project_id)
        batches, too_big = _batches(files, limits)
        local: list[t.FileOutcome] = [{"name": name, "outcome": "rejected", "reason": "request_too_large",
                                       "message": f"{size} bytes: more than one request may carry "
                                                  f"({limits['max_request_bytes']} bytes)"} for name, _, size in too_big]
        jobs: list[t.Job] = []
        path = f"/api/projects/{project_id}/images"
        with _bytes_bar(progress, "upload", sum(s for b in batches for _, _, s in b)) as bar:
            for batch in batches:
                body = _Multipart([], [("files", name, p) for name, p, _ in batch], bar)
                jobs.append(self._json("POST", path, data=body, headers={"Content-Type": body.content_type},
                                       timeout=max(self.timeout, 600)))
        for start in range(0, len(urls), limits.get("max_upload_items", 10_000)):
            jobs.append(self._json("POST", path, json={"urls": urls[start:start + limits.get("max_upload_items", 10_000)]}))
        return self._settle_uploads(jobs, local, wait, timeout, progress, "ingest")

    def _settle_uploads(self, jobs: list[t.Job], local: list, wait: bool, timeout: float, progress: bool,
                        label: str) -> t.Upload:
        if wait:
            jobs = [self.wait_job(j["id"], timeout, progress=progress, label=label) for j in jobs]
        out: t.Upload = {"jobs": jobs, "accepted": 0, "duplicate": 0, "rejected": 0, "skipped": 0, "files": []}
        merged: dict[str, Any] = {}
        for job in jobs:
            result = job.get("result") or {}
            for key in ("accepted", "duplicate", "rejected", "skipped"):
                out[key] += int(result.get(key, 0))
            out["files"].extend(result.get("files", []))
            for key, value in result.items():
                if key not in out:
                    merged[key] = merged.get(key, 0) + value if isinstance(value, int) else value
        out["files"].extend(local)
        out["rejected"] += len(local)
        if merged:
            out["result"] = merged
        failed = [j for j in jobs if j.get("status") in ("failed", "cancelled")]
        if failed:
            raise JobFailed(f"{failed[0]['kind']} job {failed[0]['id']} {failed[0]['status']}: "
                            f"{failed[0].get('error') or failed[0].get('message')}", failed[0])
        return out

    # --- boxes ---------------------------------------------------------------------------------
    def boxes(self, project_id: int, image_id: int) -> t.ImageBoxes:
        """The image's boxes and its revision (send that revision with the next write)."""
        return self._json("GET", f"/api/projects/{project_id}/images/{image_id}/annotations")

    def add_box(self, project_id: int, image_id: int, revision: int, class_id: int, x: float, y: float, w: float,
                h: float, **extra) -> t.BoxWritten:
        """Add a box (pixels); 409 `stale_revision` when someone wrote since `revision`."""
        return self._json("POST", f"/api/projects/{project_id}/images/{image_id}/annotations", json={
            "revision": revision, "class_id": class_id, "x": x, "y": y, "w": w, "h": h, **extra})

    def replace_boxes(self, project_id: int, image_id: int, revision: int, items: list[dict]) -> t.ImageBoxes:
        return self._json("PUT", f"/api/projects/{project_id}/images/{image_id}/annotations",
                          json={"revision": revision, "items": items})

    def update_box(self, project_id: int, annotation_id: int, revision: int, **changes) -> t.BoxWritten:
        return self._json("PATCH", f"/api/projects/{project_id}/annotations/{annotation_id}",
                          json={"revision": revision, **changes})

    def delete_box(self, project_id: int, annotation_id: int, revision: int) -> t.BoxWritten:
        return self._json("DELETE", f"/api/projects/{project_id}/annotations/{annotation_id}",
                          params={"revision": revision})

    def annotations(self, project_id: int, limit: int | None = None, **filters) -> Iterator[t.Box]:
        """Boxes of the project; filters: image_id, class_id, source, status, reviewed, verdict."""
        return self._pages(f"/api/projects/{project_id}/annotations", filters, limit)

    def review(self, project_id: int, annotation_id: int, verdict: str, corrected_box: dict | None = None,
               corrected_class_id: int | None = None, note: str | None = None) -> t.Box:
        return self._json("PUT", f"/api/projects/{project_id}/annotations/{annotation_id}/review", json=_body(
            verdict=verdict, corrected_box=corrected_box, corrected_class_id=corrected_class_id, note=note))

    def failed_cases(self, project_id: int, limit: int | None = None) -> Iterator[dict]:
        return self._pages(f"/api/projects/{project_id}/failed-cases", None, limit)

    # --- COCO ----------------------------------------------------------------------------------
    def import_coco(self, project_id: int, annotations: PathLike, images: Iterable[PathLike], *,
                    wait: bool = True, timeout: float = 3600, progress: bool = False) -> t.Upload:
        """A COCO detection file with its images (files, folders, zips) in one request: classes are
        matched or created by name, boxes attached to the images this import accepts, by file name."""
        files = _collect(images)
        total = Path(annotations).stat().st_size + sum(size for _, _, size in files)
        with _bytes_bar(progress, "upload", total) as bar:
            body = _Multipart([], [("annotations", Path(annotations).name, Path(annotations))]
                              + [("files", name, p) for name, p, _ in files], bar)
            job = self._json("POST", f"/api/projects/{project_id}/imports/coco", data=body,
                             headers={"Content-Type": body.content_type}, timeout=max(self.timeout, 600))
        return self._settle_uploads([job], [], wait, timeout, progress, "import")

    def export_coco(self, project_id: int, status: str | None = None, label_map_id: int | None = None) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/exports/coco",
                          params=_body(status=status, label_map_id=label_map_id))

    # --- datasets ------------------------------------------------------------------------------
    def handlers(self) -> list[dict]:
        return self._json("GET", "/api/handlers")["items"]

    def datasets(self, project_id: int | None = None, status: str | None = None, name: str | None = None,
                 limit: int | None = None) -> Iterator[t.Dataset]:
        return self._pages("/api/datasets", {"project_id": project_id, "status": status, "name": name}, limit)

    def dataset(self, key: str) -> t.Dataset:
        return self._json("GET", f"/api/datasets/{key}")

    def delete_dataset(self, key: str) -> None:
        self._json("DELETE", f"/api/datasets/{key}")

    def ask_dataset(self, project_id: int, name: str, handler: str, label_map_id: int,
                    config: dict | None = None, subset: str = "all") -> dict:
        """`POST /api/datasets` as it is: {dataset, cached, job} (job: the build, when it is not built)."""
        return self._json("POST", "/api/datasets", json={
            "project_id": project_id, "name": name, "handler": handler, "label_map_id": label_map_id,
            "subset": subset, "config": config or {}})

    def build_dataset(self, project_id: int, name: str, handler: str, label_map_id: int,
                      config: dict | None = None, subset: str = "all", *, wait_timeout: float = 3600,
                      progress: bool = False, use_socketio: bool = True) -> t.Dataset:
        """Ask for the dataset and wait for its build if it has none yet; the ready dataset (not downloaded)."""
        body = self.ask_dataset(project_id, name, handler, label_map_id, config, subset)
        dataset = body["dataset"]
        if body.get("job"):
            job = self.wait_job(body["job"]["id"], wait_timeout, progress=progress, use_socketio=use_socketio,
                                label="build")
            if job["status"] != "succeeded":
                raise DatasetBuildFailed(f"the build of dataset {dataset['key']} {job['status']}: "
                                         f"{job.get('error') or job.get('message')}", job)
            dataset = self.dataset(dataset["key"])
        if dataset["status"] != "ready":
            raise DatasetBuildFailed(f"dataset {dataset['key']} is {dataset['status']}: {dataset.get('error')}")
        return dataset

    def request_dataset(self, project_id: int, name: str, handler: str, label_map_id: int, config: dict | None = None,
                        subset: str = "all", dest: PathLike = ".", wait_timeout: float = 3600,
                        progress: bool = True, use_socketio: bool = True) -> Path:
        """Ask for the dataset, wait for its build if it has none yet, and return `dest/<key>/`, verified.
        Raises LooplineError (refused request), DatasetBuildFailed, TimeoutError (after `wait_timeout`
        seconds of building), ChecksumMismatch or UnsafeArchive."""
        dataset = self.build_dataset(project_id, name, handler, label_map_id, config, subset,
                                     wait_timeout=wait_timeout, progress=progress, use_socketio=use_socketio)
        return self.fetch(dataset, dest, progress=progress)

    # --- checkpoints and training --------------------------------------------------------------
    def architectures(self) -> list[dict]:
        return self._json("GET", "/api/architectures")["items"]

    def checkpoints(self, project_id: int, limit: int | None = None, **filters) -> Iterator[t.Checkpoint]:
        """Oldest first; filters: status, architecture, dataset_key, parent_id, class_id."""
        return self._pages(f"/api/projects/{project_id}/checkpoints", filters, limit)

    def checkpoint_tree(self, project_id: int) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/checkpoints/tree")

    def checkpoint(self, project_id: int, checkpoint_id: int) -> t.Checkpoint:
        return self._json("GET", f"/api/projects/{project_id}/checkpoints/{checkpoint_id}")

    def create_checkpoint(self, project_id: int, architecture: str, label_map_id: int, name: str | None = None,
                          input_size: int | None = None, seed: int | None = None) -> t.Checkpoint:
        """A root with fresh weights (a function of architecture, classes, size and seed)."""
        return self._json("POST", f"/api/projects/{project_id}/checkpoints", json=_body(
            architecture=architecture, label_map_id=label_map_id, name=name, input_size=input_size, seed=seed))

    def upload_checkpoint(self, project_id: int, file: PathLike, architecture: str, label_map_id: int,
                          name: str | None = None, progress: bool = False) -> t.Checkpoint:
        """A root from a `.keras` file (Keras 3), checked by the server before it is stored."""
        path = Path(file)
        fields = [("architecture", architecture), ("label_map_id", str(label_map_id))] + (
            [("name", name)] if name else [])
        with _bytes_bar(progress, "upload", path.stat().st_size) as bar:
            body = _Multipart(fields, [("file", path.name, path)], bar)
            return self._json("POST", f"/api/projects/{project_id}/checkpoints", data=body,
                              headers={"Content-Type": body.content_type}, timeout=max(self.timeout, 600))

    def fork(self, project_id: int, checkpoint_id: int, name: str | None = None) -> t.Checkpoint:
        return self._json("POST", f"/api/projects/{project_id}/checkpoints/{checkpoint_id}/fork", json=_body(name=name))

    def train(self, project_id: int, checkpoint_id: int, dataset_key: str, *, epochs: int | None = None,
              batch_size: int | None = None, learning_rate: float | None = None,
              early_stopping: dict | None = None, reinit_head: bool | None = None,
              report_every_steps: int | None = None, seed: int | None = None, wait: bool = False,
              timeout: float = 7 * 86400, on_event: Callable[[t.Job], None] | None = None,
              progress: bool = False) -> t.Checkpoint:
        """Start training a fresh (or failed) checkpoint; with `wait`, follow the run (`on_event` gets every
        state of the job: `details.step`, `details.epoch_summary`, `details.curve`) and return the checkpoint
        as it ended; JobFailed when the run failed or was cancelled."""
        ck = self._json("POST", f"/api/projects/{project_id}/checkpoints/{checkpoint_id}/train", json=_body(
            dataset_key=dataset_key, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            early_stopping=early_stopping, reinit_head=reinit_head, report_every_steps=report_every_steps, seed=seed))
        if wait:
            return self.follow_training(project_id, checkpoint_id, timeout=timeout, on_event=on_event,
                                        progress=progress)
        return ck

    def follow_training(self, project_id: int, checkpoint_id: int, *, timeout: float = 7 * 86400,
                        on_event: Callable[[t.Job], None] | None = None, progress: bool = False) -> t.Checkpoint:
        ck = self.checkpoint(project_id, checkpoint_id)
        if ck.get("job_id"):
            job = self.wait_job(ck["job_id"], timeout, on_event=on_event, progress=progress, label="train")
            ck = self.checkpoint(project_id, checkpoint_id)
            if job["status"] != "succeeded":
                raise JobFailed(f"training checkpoint {checkpoint_id} {job['status']}: "
                                f"{job.get('error') or job.get('message')}", job)
        return ck

    def download_weights(self, project_id: int, checkpoint_id: int, dest: PathLike, progress: bool = False) -> Path:
        return self._save(f"/api/projects/{project_id}/checkpoints/{checkpoint_id}/weights", Path(dest), progress)

    # --- deployments, suggestions, pipelines ---------------------------------------------------
    def deployments(self, project_id: int, limit: int | None = None, **filters) -> Iterator[t.Deployment]:
        """Newest first; filters: task, active, status."""
        return self._pages(f"/api/projects/{project_id}/deployments", filters, limit)

    def deployment(self, project_id: int, deployment_id: int) -> t.Deployment:
        return self._json("GET", f"/api/projects/{project_id}/deployments/{deployment_id}")

    def deploy(self, project_id: int, checkpoint_id: int, activate: bool = True, *, wait: bool = True,
               timeout: float = 3600, progress: bool = False) -> t.Deployment:
        """Export the checkpoint to ONNX, check it against Keras and (with `activate`) make it the active one;
        with `wait`, the ready deployment (JobFailed with the reason when the check refused it)."""
        dep = self._json("POST", f"/api/projects/{project_id}/deployments",
                         json={"checkpoint_id": checkpoint_id, "activate": activate})
        if not wait or not dep.get("job_id"):
            return dep
        job = self.wait_job(dep["job_id"], timeout, progress=progress, label="deploy")
        dep = self.deployment(project_id, dep["id"])
        if job["status"] != "succeeded" or dep["status"] != "ready":
            raise JobFailed(f"deployment {dep['id']} {dep['status']}: {dep.get('error') or job.get('error')}", job)
        return dep

    def activate(self, project_id: int, deployment_id: int) -> t.Deployment:
        return self._json("POST", f"/api/projects/{project_id}/deployments/{deployment_id}/activate")

    def download_model(self, project_id: int, deployment_id: int, dest: PathLike, progress: bool = False) -> Path:
        return self._save(f"/api/projects/{project_id}/deployments/{deployment_id}/model", Path(dest), progress)

    def suggest(self, project_id: int, image_id: int, region: Box4 | dict | None = None,
                point: tuple[float, float] | dict | None = None) -> t.Suggestion:
        """The active suggester's box around a rough `region` (x, y, w, h) or a `point` (x, y), stored as a
        proposed model box."""
        if (region is None) == (point is None):
            raise ValueError("give a region or a point")
        body = {"region": _xywh(region)} if region is not None else {
            "point": point if isinstance(point, dict) else dict(zip(("x", "y"), point))}
        return self._json("POST", f"/api/projects/{project_id}/images/{image_id}/suggestions", json=body)

    def pipelines(self) -> dict:
        return self._json("GET", "/api/pipelines")

    def run_pipeline(self, name: str, project_id: int, *, urls: Iterable[str] = (), files: Iterable[PathLike] = (),
                     regions: Sequence[Box4 | dict | None] | None = None, then: Sequence[str] = ()) -> t.PipelineRun:
        """Run a pipeline (`suggest`, `classify`) or one stage (plus `then`) on up to 64 images: URLs, or
        files sent as bytes; `regions[i]` is the rough box of item i (for `suggest`)."""
        urls, files = list(urls), [Path(f) for f in files]
        if bool(urls) == bool(files):
            raise ValueError("give URLs or files, not both")
        regs = [None if r is None else _xywh(r) for r in regions] if regions is not None else None
        path = f"/api/pipelines/{name}/runs"
        if urls:
            items = [_body(url=u, region=regs[i] if regs and i < len(regs) else None) for i, u in enumerate(urls)]
            return self._json("POST", path, json=_body(project_id=project_id, items=items, then=list(then) or None))
        fields = [("project_id", str(project_id))] + ([("then", ",".join(then))] if then else []) + (
            [("regions", json.dumps(regs))] if regs is not None else [])
        body = _Multipart(fields, [("files", f.name, f) for f in files], None)
        return self._json("POST", path, data=body, headers={"Content-Type": body.content_type})

    # --- detectors: evaluation and pre-annotation --------------------------------------------
    def evaluate(self, project_id: int, *, checkpoint_id: int | None = None, deployment_id: int | None = None,
                 label_map_id: int | None = None, subset: str | None = None, image_ids: Sequence[int] | None = None,
                 wait: bool = True, timeout: float = 3600, progress: bool = False) -> dict:
        """Score a detector checkpoint or deployment (COCO mAP) on a label map's selection or on image ids;
        with `wait`, the finished evaluation (its `metrics`), JobFailed when the job did not succeed."""
        ev = self._json("POST", f"/api/projects/{project_id}/evaluations", json=_body(
            checkpoint_id=checkpoint_id, deployment_id=deployment_id, label_map_id=label_map_id, subset=subset,
            image_ids=list(image_ids) if image_ids is not None else None))
        if not wait or not ev.get("job_id"):
            return ev
        job = self.wait_job(ev["job_id"], timeout, progress=progress, label="evaluate")
        ev = self.evaluation(project_id, ev["id"])
        if job["status"] != "succeeded":
            raise JobFailed(f"evaluation {ev['id']} {job['status']}: {ev.get('error') or job.get('error')}", job)
        return ev

    def evaluations(self, project_id: int, limit: int | None = None, **filters) -> Iterator[dict]:
        """Newest first; filters: checkpoint_id, status."""
        return self._pages(f"/api/projects/{project_id}/evaluations", filters, limit)

    def evaluation(self, project_id: int, evaluation_id: int) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/evaluations/{evaluation_id}")

    def preannotate(self, project_id: int, *, image_ids: Sequence[int] | None = None, ingest_job_id: str | None = None,
                    unannotated: bool | None = None, threshold: float | None = None, wait: bool = True,
                    timeout: float = 3600, progress: bool = False) -> t.Job:
        """The active detector's detections over a selection, stored as proposed model boxes (one job)."""
        job = self._json("POST", f"/api/projects/{project_id}/pre-annotations", json=_body(
            image_ids=list(image_ids) if image_ids is not None else None, ingest_job_id=ingest_job_id,
            unannotated=unannotated, threshold=threshold))
        if wait:
            job = self.wait_job(job["id"], timeout, progress=progress, label="pre-annotate")
            if job["status"] != "succeeded":
                raise JobFailed(f"pre-annotation job {job['id']} {job['status']}: {job.get('error')}", job)
        return job

    def preannotation_settings(self, project_id: int) -> dict:
        return self._json("GET", f"/api/projects/{project_id}/pre-annotation")

    def set_preannotation(self, project_id: int, *, after_ingest: bool | None = None,
                          threshold: float | None = None) -> dict:
        return self._json("PUT", f"/api/projects/{project_id}/pre-annotation",
                          json=_body(after_ingest=after_ingest, threshold=threshold))

    # --- jobs ----------------------------------------------------------------------------------
    def jobs(self, project_id: int | None = None, kind: str | None = None, status: str | None = None,
             queue: str | None = None, limit: int | None = None) -> Iterator[t.Job]:
        """Newest first."""
        return self._pages("/api/jobs", {"project_id": project_id, "kind": kind, "status": status, "queue": queue},
                           limit)

    def job(self, job_id: str) -> t.Job:
        return self._json("GET", f"/api/jobs/{job_id}")

    def submit_job(self, kind: str, queue: str | None = None, project_id: int | None = None,
                   params: dict | None = None) -> t.Job:
        return self._json("POST", "/api/jobs", json=_body(kind=kind, queue=queue, project_id=project_id, params=params))

    def cancel_job(self, job_id: str) -> t.Job:
        """A queued job ends `cancelled` at once; a running one stops at its next step."""
        return self._json("POST", f"/api/jobs/{job_id}/cancel")

    def retry_job(self, job_id: str) -> t.Job:
        """A new job with the same request as one that ended (failed, cancelled)."""
        return self._json("POST", f"/api/jobs/{job_id}/retry")

    def follow_job(self, job_id: str, timeout: float | None = None, *, use_socketio: bool = True) -> Iterator[t.Job]:
        """Every new state of the job, the first as it is now, the last terminal. Events come over Socket.IO
        when it connects; the job is polled every `poll_interval` seconds regardless, so a lost event costs
        one interval. TimeoutError after `timeout` seconds."""
        events: queue.Queue = queue.Queue()
        sio = self._subscribe({"job": job_id}, lambda d: events.put(d) if d.get("id") == job_id else None) \
            if use_socketio else None
        self.waited_with = "socketio" if sio else "polling"
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            job = self.job(job_id)  # read after joining, so no event can fall between the two
            yield job
            next_poll = time.monotonic() + self.poll_interval
            while job["status"] not in TERMINAL:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:g}s")
                wake = next_poll if deadline is None else min(next_poll, deadline)
                try:
                    new = events.get(timeout=max(0.0, wake - now))
                except queue.Empty:
                    next_poll = time.monotonic() + self.poll_interval
                    try:
                        new = self.job(job_id)
                    except Unreachable:  # the API restarting: keep waiting
                        continue
                if (new.get("updated_at") or "") < (job.get("updated_at") or "") and new["status"] not in TERMINAL:
                    continue  # an event older than what was read
                if _state(new) != _state(job):
                    job = new
                    yield job
        finally:
            if sio is not None:
                with contextlib.suppress(Exception):
                    sio.disconnect()

    def wait_job(self, job_id: str, timeout: float = 3600, *, progress: bool = False, use_socketio: bool = True,
                 on_event: Callable[[t.Job], None] | None = None, label: str | None = None) -> t.Job:
        """Block until the job ends and return its JSON (whatever its status). `on_event` gets every state;
        `progress` draws a bar on stderr."""
        bar = None
        job: t.Job = {}
        try:
            for job in self.follow_job(job_id, timeout, use_socketio=use_socketio):
                if on_event is not None:
                    on_event(job)
                if progress:
                    if bar is None:
                        bar = tqdm(total=100, desc=label or job.get("kind", "job"), unit="%", file=sys.stderr,
                                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}",
                                   mininterval=0.1)
                    bar.n = round(100 * (1.0 if job["status"] == "succeeded" else job.get("progress") or 0), 1)
                    bar.set_postfix_str(f"{job['status']} {job.get('message') or ''}"[:60], refresh=False)
                    bar.refresh()
        finally:
            if bar is not None:
                bar.close()
        return job

    def watch(self, project_id: int | None = None, *, use_socketio: bool = True) -> Iterator[t.Job]:
        """Every change of the jobs of a project (or all of yours) from now on, forever: Socket.IO events
        plus a poll of the newest 50 every `poll_interval` (nothing is missed while the socket is down)."""
        events: queue.Queue = queue.Queue()
        room = {"project": project_id} if project_id is not None else None
        sio = self._subscribe(room, events.put) if use_socketio and room else None
        self.waited_with = "socketio" if sio else "polling"
        seen: dict[str, tuple] = {j["id"]: _state(j) for j in self.jobs(project_id, limit=50)}
        next_poll = time.monotonic() + self.poll_interval
        try:
            while True:
                try:
                    batch = [events.get(timeout=max(0.0, next_poll - time.monotonic()))]
                except queue.Empty:
                    next_poll = time.monotonic() + self.poll_interval
                    try:
                        batch = list(reversed(list(self.jobs(project_id, limit=50))))
                    except Unreachable:
                        continue
                for job in batch:
                    if isinstance(job, dict) and "id" in job and seen.get(job["id"]) != _state(job):
                        seen[job["id"]] = _state(job)
                        yield job
        finally:
            if sio is not None:
                with contextlib.suppress(Exception):
                    sio.disconnect()

    def _subscribe(self, room: dict, put):
        """A Socket.IO client in `room`, or None when it cannot connect or join."""
        import socketio

        sio = socketio.Client(reconnection=False, handle_sigint=False)
        sio.on("job", lambda data: put(data) if isinstance(data, dict) else None)
        try:
            sio.connect(self.socketio_url, auth={"token": self.token}, transports=["websocket"],
                        wait_timeout=min(10, self.timeout))
            answer = sio.call("join", room, timeout=min(10, self.timeout))
            if isinstance(answer, dict) and answer.get("ok"):
                return sio
        except Exception:  # no socket at all is fine: polling does the job
            pass
        with contextlib.suppress(Exception):
            sio.disconnect()
        return None

    # --- downloading ---------------------------------------------------------------------------
    def _save(self, path: str, dest: Path, progress: bool) -> Path:
        """Stream a file to `dest` (a folder: the server's file name in it) through a `.part` beside it."""
        try:
            res = self.http.get(self.url + path, stream=True, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}") from None
        with res:
            if res.status_code >= 400:
                raise _error(res)
            if dest.is_dir():
                name = _filename(res.headers.get("Content-Disposition", "")) or PurePosixPath(path).name
                dest = dest / name
            part = dest.with_name(dest.name + ".part")
            total = int(res.headers.get("Content-Length") or 0) or None
            try:
                with open(part, "wb") as out, _bytes_bar(progress, dest.name[:20], total) as bar:
                    for chunk in res.iter_content(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                os.replace(part, dest)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        return dest

    def fetch(self, dataset: dict, dest: PathLike = ".", *, progress: bool = True) -> Path:
        """`dest/<key>/` for a ready dataset's JSON: kept when it verifies, else downloaded and unpacked."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        key, files = dataset["key"], dataset["manifest"].get("files", {})
        folder = dest / key
        if folder.is_dir():
            try:
                verify_folder(folder, files)
                return folder
            except ChecksumMismatch as exc:
                if progress:
                    print(f"{folder} does not verify ({exc}); downloading it again", file=sys.stderr)
                shutil.rmtree(folder)
        part = dest / f"{key}.zip.part"
        self._download(dataset, part, progress)
        try:
            return _unpack(part, folder, files)
        finally:
            part.unlink(missing_ok=True)

    def _download(self, dataset: dict, part: Path, progress: bool) -> None:
        key, size = dataset["key"], dataset["size_bytes"]
        expected = dataset["sha256"]
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have < size:
            expected = self._transfer(f"/api/datasets/{key}/archive", part, have, size, expected, progress)
        if part.stat().st_size < size:  # the connection ended early: keep the part for the next try
            raise Unreachable(f"download of {key} stopped at {part.stat().st_size} of {size} bytes; run again to resume")
        if _sha256(part) != expected:
            part.unlink()
            raise ChecksumMismatch(f"the download of dataset {key} does not match its SHA-256 {expected}; deleted")

    def _transfer(self, path: str, part: Path, have: int, size: int, sha256: str, progress: bool) -> str:
        """Append the missing bytes (or restart when the server will not resume); return the SHA-256
        the server announced."""
        headers = {"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'} if have else {}
        try:
            res = self.http.get(self.url + path, headers=headers, stream=True, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}") from None
        with res:
            if res.status_code >= 400:
                raise _error(res)
            resumed = res.status_code == 206 and res.headers.get("Content-Range") == f"bytes {have}-{size - 1}/{size}"
            if have and not resumed and res.status_code != 200:  # a range we did not ask for: ask for all
                res.close()
                part.unlink()
                return self._transfer(path, part, 0, size, sha256, progress)
            start = have if resumed else 0
            try:
                with open(part, "ab" if resumed else "wb") as out, \
                        _bytes_bar(progress, f"dataset {part.name[:12]}", size, start) as bar:
                    for chunk in res.iter_content(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            except requests.RequestException as exc:  # keep the part: the next try resumes
                raise Unreachable(f"the download of {part.name} broke off ({_reason(exc)}); run again to resume") \
                    from None
            return res.headers.get("X-Checksum-SHA256") or sha256


def verify_folder(folder: PathLike, expected_files: dict | None = None) -> dict:
    """Check every file `manifest.json` lists (and, when given, that it lists `expected_files`, the
    server's); return the manifest. Raises ChecksumMismatch naming the first bad file."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChecksumMismatch(f"{folder}/manifest.json is missing or unreadable: {exc}") from None
    if expected_files is not None and files != expected_files:
        raise ChecksumMismatch(f"{folder}/manifest.json does not list the files the server built")
    for name, entry in files.items():
        path = folder / _safe_name(name)
        if not path.is_file() or path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
            raise ChecksumMismatch(f"{path} does not match the manifest")
    return manifest


def _unpack(archive: Path, folder: Path, expected_files: dict) -> Path:
    """Extract into a temporary sibling, verify, then rename it to `folder` in one step."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name[:12]}-", dir=folder.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:  # check them all before writing anything
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UnsafeArchive(f"{archive.name}: {info.filename!r} is a link")
                _safe_name(info.filename)
            for info in members:
                target = tmp / _safe_name(info.filename)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        verify_folder(tmp, expected_files)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process put it there first
            if not folder.is_dir():
                raise
            verify_folder(folder, expected_files)
        return folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe_name(name: str) -> PurePosixPath:
    """A relative path that stays inside its folder, or UnsafeArchive."""
    path = PurePosixPath(name)
    if (not name or "\\" in name or "\0" in name or path.is_absolute() or ".." in path.parts
            or ":" in path.parts[0]):
        raise UnsafeArchive(f"archive member {name!r} would land outside the dataset folder")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _error(res: requests.Response) -> LooplineError:
    try:
        err = res.json()["error"]
        return LooplineError(int(err.get("status", res.status_code)), err.get("code", "error"),
                             err.get("message", ""), err.get("fields"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return LooplineError(res.status_code, "http_error", f"{res.reason}: {res.text[:200]}")


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error, which says what happened (refused, no such host)."""
    inner: BaseException = exc
    while inner.__context__ is not None and not isinstance(inner, OSError):
        inner = inner.__context__
    text = str(inner)
    return text.split("] ", 1)[-1].rstrip(")'\"") if "Errno" in text else text


def _body(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _param(v):
    return ("true" if v else "false") if isinstance(v, bool) else v


def _state(job: dict) -> tuple:
    return (job.get("status"), job.get("progress"), job.get("message"), job.get("updated_at"),
            json.dumps(job.get("details"), sort_keys=True, default=str))


def _xywh(box: Box4 | dict) -> dict:
    return dict(box) if isinstance(box, dict) else dict(zip(("x", "y", "w", "h"), box))


def _filename(disposition: str) -> str | None:
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            name = PurePosixPath(value.strip('"')).name
            return name if name not in ("", ".", "..") else None
    return None


# --- uploads -------------------------------------------------------------------------------------
def _collect(paths: Iterable[PathLike]) -> list[tuple[str, Path, int]]:
    """(name sent, path, size) for files as given and for the images and zips inside folders (sorted,
    hidden entries skipped); the name of a file found in a folder is its path from that folder."""
    out: list[tuple[str, Path, int]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                rel = found.relative_to(path)
                if found.is_file() and found.suffix.lower() in IMAGE_SUFFIXES and not any(
                        p.startswith(".") for p in rel.parts):
                    out.append((f"{path.name}/{rel.as_posix()}", found, found.stat().st_size))
        elif path.is_file():
            out.append((path.name, path, path.stat().st_size))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return out


def _items(path: Path) -> int:
    """Report entries a file will make on the server (members of a zip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return max(1, len(zf.infolist()))
    except (zipfile.BadZipFile, OSError):
        return 1


def _batches(files: list[tuple[str, Path, int]], limits: dict) -> tuple[list[list], list]:
    """Files grouped into requests under the server's request size and item limits; those that fit none."""
    budget = int(limits.get("max_request_bytes", 64 << 20) * 0.95) - (64 << 10)
    max_items = int(limits.get("max_upload_items", 10_000))
    batches: list[list] = []
    too_big: list = []
    size = items = 0
    for entry in files:
        cost = entry[2] + 512  # the part's own headers
        count = _items(entry[1]) if entry[1].suffix.lower() == ".zip" else 1
        if cost > budget:
            too_big.append(entry)
            continue
        if not batches or size + cost > budget or items + count > max_items:
            batches.append([])
            size = items = 0
        batches[-1].append(entry)
        size += cost
        items += count
    return batches, too_big


class _Multipart:
    """A multipart/form-data body read from disk while it is sent (never whole in memory), its length
    known up front; `bar` counts the file bytes that went out."""

    def __init__(self, fields: list[tuple[str, str]], files: list[tuple[str, str, Path]], bar):
        self.boundary = "loopline-" + secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._parts: list[bytes | Path] = []
        for name, value in fields:
            self._parts.append(f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                               .encode() + value.encode() + b"\r\n")
        for name, filename, path in files:
            safe = "".join(c for c in filename if c >= " " and c != "\x7f").replace('"', "%22").replace("\\", "/")
            self._parts.append(f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                               f'filename="{safe}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
            self._parts.append(path)
            self._parts.append(b"\r\n")
        self._parts.append(f"--{self.boundary}--\r\n".encode())
        self.length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in self._parts)
        self._bar = bar
        self._index, self._fh, self._buf = 0, None, b""

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n is None or n < 0 else max(n, 64 << 10)
        out = bytearray()
        while len(out) < n and self._index < len(self._parts):
            part = self._parts[self._index]
            if isinstance(part, bytes):
                out += part
                self._index += 1
                continue
            if self._fh is None:
                self._fh = open(part, "rb")
            chunk = self._fh.read(n - len(out))
            if chunk:
                out += chunk
                if self._bar is not None:
                    self._bar.update(len(chunk))
            else:
                self._fh.close()
                self._fh = None
                self._index += 1
        return bytes(out)


@contextlib.contextmanager
def _bytes_bar(enabled: bool, label: str, total: int | None, initial: int = 0):
    fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{elapsed}<{remaining}, {rate_fmt}]" \
        if total else None
    bar = tqdm(total=total, initial=initial, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
               file=sys.stderr, disable=not enabled, mininterval=0.1, leave=True, bar_format=fmt)
    try:
        yield bar
    finally:
        bar.close()
