"""`Loopline` methods for the data: images and uploads, boxes and reviews, COCO import/export, datasets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from loopline_client import types as t
from loopline_client._files import _batches, _bytes_bar, _collect, _Multipart
from loopline_client._http import _body, _Http, PathLike
from loopline_client.errors import DatasetBuildFailed, JobFailed, LooplineError


class _Data(_Http):
    """Images, uploads, boxes, reviews, COCO and datasets (building and fetching)."""

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
