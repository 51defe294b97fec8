"""Taking an upload: its files streamed into staging, then one ingest job. Nothing heavy happens in the
request; the job (`services/ingest.py`) checks and converts every file and reports each one's outcome.

What is refused before anything is enqueued: more files than `LOOPLINE_MAX_UPLOAD_ITEMS`, a URL that is
malformed or not http(s), a COCO document that does not parse (every problem listed). A file over the image
size limit that is not a zip is not staged; the job's report lists it as rejected. Whatever cannot be
enqueued leaves no staged files behind.
"""

from __future__ import annotations

import io
import json

from handlers.coco import CocoError, parse_coco
from services import jobs as job_service
from services.errors import CommandError
from services.fetch import FetchRefused, check_url
from services.ingest import ZIP_MAGIC, fetch_policy
from store.blobs import BlobTooLarge
from store.schema import Job
from store.settings import Settings
from store.staging import Staging


def staging(settings: Settings) -> Staging:
    return Staging(settings.staging_dir)


def stage_files(settings: Settings, upload_id: str, files: list) -> tuple[list[dict], list[dict]]:
    """Copy each file (`filename`, `stream`, as werkzeug gives them) into the upload's staging folder.
    Returns (staged, rejected): a file over the image size limit that is not a zip is rejected here."""
    if len(files) > settings.max_upload_items:
        raise CommandError(400, f"{len(files)} files in one upload; the limit is {settings.max_upload_items}")
    store = staging(settings)
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


def submit_ingest(celery, runtime, session, project_id: int, user_id: int, params: dict) -> Job:
    """Add the ingest job (sent after the caller commits); if it cannot be added, the staged files go too."""
    try:
        return job_service.submit_many(celery, runtime, session, [
            {"kind": "ingest", "params": {**params, "user_id": user_id}, "project_id": project_id, "user_id": user_id}
        ])[0]
    except Exception:
        if params.get("staging"):
            staging(runtime.settings).remove(params["staging"])
        raise


def ingest_files(celery, runtime, session, project_id: int, user_id: int, files: list, *,
                 coco: dict | None = None) -> Job:
    """Stage `files` (and the COCO document whose boxes the job attaches to them) and add the ingest job."""
    store = staging(runtime.settings)
    upload_id = store.new_upload()
    try:
        staged, rejected = stage_files(runtime.settings, upload_id, files)
        params = {"staging": upload_id, "files": staged, "rejected": rejected}
        if coco is not None:
            params["coco"], _ = store.save(upload_id, len(files), io.BytesIO(json.dumps(coco).encode()))
    except BaseException:
        store.remove(upload_id)
        raise
    return submit_ingest(celery, runtime, session, project_id, user_id, params)


def check_urls(settings: Settings, urls: list[str], field: str = "urls") -> None:
    """Refuse malformed and non-http(s) URLs now (a 400 naming each). Addresses are judged by the job, URL
    by URL and after every redirect, so one refused address does not stop the others."""
    policy = fetch_policy(settings)
    bad = {}
    for i, url in enumerate(urls):
        try:
            check_url(url, policy)
        except FetchRefused as exc:
            if exc.reason in ("bad_url", "scheme"):
                bad[f"{field}.{i}"] = [str(exc)]
    if bad:
        raise CommandError(400, f"{len(bad)} URL(s) cannot be fetched: "
                                + "; ".join(f"{k}: {v[0]}" for k, v in bad.items()), fields=bad)


def ingest_urls(celery, runtime, session, project_id: int, user_id: int, urls: list[str]) -> Job:
    """An ingest job that fetches `urls`."""
    check_urls(runtime.settings, urls)
    return submit_ingest(celery, runtime, session, project_id, user_id, {"urls": urls})


def import_coco(celery, runtime, session, project_id: int, user_id: int, document, files: list) -> Job:
    """An ingest job that stores `files` and adds the boxes the COCO `document` (parsed JSON) gives them. The
    document is checked now: a 400 lists every problem."""
    try:
        parse_coco(document)
    except CocoError as exc:
        raise CommandError(400, str(exc), fields={"annotations": exc.problems}) from None
    if not files:
        raise CommandError(400, "no images: send them (or zips of them) in the multipart field 'files'",
                           fields={"files": ["required"]})
    return ingest_files(celery, runtime, session, project_id, user_id, files, coco=document)
