"""The ingest job (augmentation queue): staged files, zips and URLs → images, optionally with COCO boxes."""

from __future__ import annotations

import json

from celery import current_app

from handlers.coco import parse_coco
from store.staging import Staging
from services.coco_import import CocoAttacher, resolve_classes
from workers.context import JobContext, job_task
from services.ingest import Ingestor, Report, count_entries, iter_items, run
from services.preannotate import after_ingest


@job_task("ingest")
def ingest(ctx: JobContext, staging: str | None = None, files: list | None = None, urls: list | None = None,
           rejected: list | None = None, coco: str | None = None, user_id: int | None = None) -> dict:
    settings = ctx.rt.settings
    store = Staging(settings.staging_dir)
    params = {"staging": staging, "files": files or [], "urls": urls or []}
    if staging and not store.exists(staging):
        raise RuntimeError("the uploaded files are gone from staging (was this upload already ingested?)")
    try:
        report = Report()
        for r in rejected or []:
            report.add(r["name"], "rejected", reason=r["reason"], message=r["message"])
        total = count_entries(params, store) + len(report.files)
        attacher = None
        if coco:
            document = parse_coco(json.loads(store.path(staging, coco).read_bytes()))
            classes, created = resolve_classes(ctx.rt.sessions, ctx.project_id, document)
            attacher = CocoAttacher(ctx.rt.sessions, document, classes, user_id)
        ingestor = Ingestor(ctx.rt.sessions, ctx.rt.blobs, settings, project_id=ctx.project_id, job_id=ctx.id,
                            user_id=user_id)

        def progress(done: int) -> None:
            ctx.progress(done, max(total, done), f"{done}/{total} files read", **report.counts(),
                         recent=report.recent())

        items = iter_items(params, store, settings, report)  # lazily: zip members are read from the open zip
        run(items, ingestor, report, progress, attacher.attach if attacher else lambda entry: None)
        done = len(report.files)
        ctx.progress(done, max(total, done), f"{done} files read", **report.counts(), recent=report.recent())
        result = report.summary()
        if attacher is not None:
            result["coco"] = {
                "classes_created": created, "boxes": sum(f.get("boxes", 0) for f in report.files),
                "images_without_file": attacher.missing(),
            }
        with ctx.rt.sessions() as session:  # the project may ask for pre-annotation of what arrived
            follow = after_ingest(current_app, ctx.rt, session, ctx.project_id, ctx.id, user_id)
            session.commit()
        if follow is not None:
            result["pre_annotation_job_id"] = follow.id
        return result
    finally:
        if staging:
            store.remove(staging)
