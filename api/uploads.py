"""Taking an upload: stream its files into staging and enqueue one ingest job. Nothing heavy happens in
the request; the job checks and converts every file and reports each one's outcome."""

from __future__ import annotations

from flask import request

from api.auth import current_user
from api.errors import ApiError
from api.extensions import celery, db, runtime
from api.inputs import clean_filename
from store.blobs import BlobTooLarge
from store.schema import Job
from store.staging import Staging
from services import jobs as job_service
from services.ingest import ZIP_MAGIC


def staging() -> Staging:
    return Staging(runtime().settings.staging_dir)


def uploaded_files(field: str = "files", what: str = "images and zips", form: bool = False) -> list:
    """The files of multipart field `field`; 400 for other file fields, and for any text field unless the
    caller reads a `form` (with a Strict schema, which names unknown ones)."""
    if request.form and not form:
        unknown = sorted(request.form)
        raise ApiError(400, f"unknown multipart fields {unknown}; send {what} as {field!r}",
                       fields={k: ["unknown field"] for k in unknown})
    files = [f for f in request.files.getlist(field) if f is not None]
    for f in files:
        f.filename = clean_filename(f.filename)  # kept as metadata (job reports, checkpoint names) only
    unknown = sorted(set(request.files) - {field, "annotations"})
    if unknown:
        raise ApiError(400, f"unknown multipart fields {unknown}; send {what} as {field!r}",
                       fields={k: ["unknown field"] for k in unknown})
    return files


def stage_files(upload_id: str, files: list) -> tuple[list[dict], list[dict]]:
    """Copy each file into the upload's staging folder. Returns (staged, rejected): a file over the image
    size limit that is not a zip is rejected here, and the job's report will list it."""
    settings = runtime().settings
    if len(files) > settings.max_upload_items:
        raise ApiError(400, f"{len(files)} files in one upload; the limit is {settings.max_upload_items}")
    store = staging()
    staged, rejected = [], []
    for i, f in enumerate(files):
        name = (f.filename or f"file-{i + 1}")[-512:]
        try:
            file_id, size = store.save(upload_id, i, f.stream, max_bytes=settings.max_request_bytes, durable=False)
        except BlobTooLarge as exc:
            rejected.append({"name": name, "reason": "too_large", "message": str(exc)})
            continue
        path = store.path(upload_id, file_id)
        if size > settings.max_image_bytes:
            with open(path, "rb") as fh:
                is_zip = fh.read(4) == ZIP_MAGIC
            if not is_zip:
                path.unlink()
                rejected.append({"name": name, "reason": "too_large",
                                 "message": f"{size} bytes; the limit is {settings.max_image_bytes}"})
                continue
        staged.append({"name": name, "file": file_id})
    store.sync(upload_id)  # durable before the job that reads them is enqueued
    return staged, rejected


def submit_ingest(project_id: int, params: dict) -> Job:
    """Enqueue the ingest job (the view answers it as `JobOut`); if it cannot be sent, the staged files go too."""
    user = current_user()
    try:
        job = job_service.submit_many(celery(), runtime(), db.session, [
            {"kind": "ingest", "params": {**params, "user_id": user.id}, "project_id": project_id, "user_id": user.id}
        ])[0]
    except Exception:
        if params.get("staging"):
            staging().remove(params["staging"])
        raise
    return job


def ingest_files(project_id: int, files: list, stage_extra=None) -> Job:
    """Stage `files` (plus whatever `stage_extra(upload_id)` adds to the params) and enqueue the job."""
    store = staging()
    upload_id = store.new_upload()
    try:
        staged, rejected = stage_files(upload_id, files)
        params = {"staging": upload_id, "files": staged, "rejected": rejected}
        if stage_extra is not None:
            params.update(stage_extra(upload_id))
    except BaseException:
        store.remove(upload_id)
        raise
    return submit_ingest(project_id, params)
