"""COCO detection interop: import a COCO JSON with its images into a project, export accepted boxes."""

from __future__ import annotations

import json

from flask import Response, request
from flask.views import MethodView
from sqlalchemy import select

from api.auth import current_user, project_access, require_role
from api.blueprint import Blueprint, referenced
from api.data_schemas import CocoExportQuery, CocoImportUpload
from api.errors import ApiError
from api.extensions import celery, db, runtime
from api.inputs import load_json
from api.schemas import JobOut
from api.uploads import uploaded_files
from handlers.coco import build_coco
from services import uploads
from store.schema import Annotation, Image, LabelClass, LabelMap, Role

bp = Blueprint("interop", __name__, url_prefix="/api/projects/<int:project_id>", description="COCO import and export")


@bp.route("/imports/coco")
class CocoImport(MethodView):
    @bp.response(202, JobOut)
    @bp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": CocoImportUpload}}})
    def post(self, project_id):
        """Import a COCO detection file with its images. The JSON is checked now (400 lists every
        problem); the ingest job then stores the images and adds their boxes as accepted human boxes.
        Categories map to the project's classes by name; missing ones are created (group = supercategory).
        Images that are already in the project are reported as duplicates and get no boxes."""
        require_role(project_id, Role.annotator)
        if request.mimetype != "multipart/form-data":
            raise ApiError(415, "send multipart/form-data with 'annotations' (the COCO JSON) and 'files'")
        document = request.files.get("annotations")
        if document is None:
            raise ApiError(400, "the COCO JSON is missing: send it in the multipart field 'annotations'",
                           fields={"annotations": ["required"]})
        try:
            raw = load_json(document.stream.read(), root="annotations")  # nesting, Unicode, 64-bit integers
        except ValueError as exc:
            raise ApiError(400, f"'annotations' is not JSON: {exc}", fields={"annotations": [str(exc)]}) from None
        return uploads.import_coco(celery(), runtime(), db.session, project_id, current_user().id, raw,
                                   uploaded_files())


@bp.route("/exports/coco")
class CocoExport(MethodView):
    @bp.arguments(CocoExportQuery, location="query")
    @bp.doc(responses={"200": {"description": "the COCO detection JSON, as an attachment", "content": {
        "application/json": {"schema": {"type": "object", "required": ["images", "annotations", "categories"]}}}}})
    def get(self, args, project_id):
        """The project's boxes (accepted by default) as a COCO detection JSON attachment. Every image is
        listed, with `file_name` = `<image id>.jpg|png` as served by `/images/<id>/file`. Category ids are
        the project's class ids, or the label map's ids when `label_map_id` is given."""
        project, _ = project_access(project_id)
        s = db.session
        if "label_map_id" in args:
            label_map = referenced(LabelMap, args["label_map_id"], project_id, "label map", "label_map_id")
            ids = {e.class_id: e.position + 1 for e in label_map.entries}
            categories = [{"id": e.position + 1, "name": e.label_class.name, "group": e.label_class.group}
                          for e in label_map.entries]
        else:
            rows = s.execute(select(LabelClass.id, LabelClass.name, LabelClass.group)
                             .where(LabelClass.project_id == project_id).order_by(LabelClass.id)).all()
            ids = {c: c for c, _, _ in rows}
            categories = [{"id": c, "name": n, "group": g} for c, n, g in rows]
        images = [{"id": i, "file_name": f"{i}.{'jpg' if f == 'JPEG' else 'png'}", "width": w, "height": h}
                  for i, f, w, h in s.execute(select(Image.id, Image.format, Image.width, Image.height)
                                              .where(Image.project_id == project_id).order_by(Image.id))]
        boxes = [
            {"id": a, "image_id": i, "category_id": ids[c], "x": x, "y": y, "w": w, "h": h, "score": sc}
            for a, i, c, x, y, w, h, sc in s.execute(
                select(Annotation.id, Annotation.image_id, Annotation.class_id, Annotation.x, Annotation.y,
                       Annotation.w, Annotation.h, Annotation.score)
                .join(Image, Image.id == Annotation.image_id)
                .where(Image.project_id == project_id, Annotation.status == args["status"],
                       Annotation.class_id.in_(list(ids)))
                .order_by(Annotation.id))
        ]
        info = {"description": f"loopline project {project.name!r}: {args['status'].value} boxes", "version": "1.0"}
        doc = build_coco(categories, images, boxes, info=info)
        name = f"{project.name}-coco.json".replace('"', "")
        return Response(json.dumps(doc), mimetype="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

