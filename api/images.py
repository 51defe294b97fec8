"""Images: upload (files, zips or URLs → one ingest job), list with filters, the stored bytes, delete."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from sqlalchemy import and_, exists, func, select

from api.auth import current_user, require_role
from api.blueprint import Blueprint, Extended, in_project, page
from api.data_schemas import ImageDeleted, ImageFormatsOut, ImageOut, ImagePage, ImageQuery, ImageUpload, UrlsIn
from api.errors import ApiError, load_input
from api.extensions import celery, db, runtime
from api.files import download_doc, send_blob
from api.schemas import JobOut
from api.uploads import uploaded_files
from services import annotations, uploads
from handlers.imaging import ACCEPTED_FORMATS
from store.schema import Annotation, AnnotationSource, Image, Review, Role, Verdict

bp = Blueprint("images", __name__, url_prefix="/api/projects/<int:project_id>", description="Images and their files")

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}
_CACHE = "private, max-age=31536000, immutable"  # stored bytes never change: the key is their hash


def get_image(project_id: int, image_id: int) -> Image:
    return in_project(Image, image_id, project_id, "image")


def box_count():
    return (select(func.count()).select_from(Annotation).where(Annotation.image_id == Image.id)
            .correlate(Image).scalar_subquery())


def counted(image: Image) -> Extended:
    """The image with its number of boxes, as ImageOut dumps it."""
    boxes = db.session.scalar(select(func.count()).select_from(Annotation).where(Annotation.image_id == image.id))
    return Extended(image, boxes=boxes)


def _has_box(*conditions):
    return exists().where(Annotation.image_id == Image.id, *conditions)


def image_filters(args: dict) -> list:
    """SQL conditions for the list filters; each is an EXISTS over boxes or reviews, so no rows are loaded."""
    cond = []
    if "annotated" in args:
        cond.append(_has_box() if args["annotated"] else ~_has_box())
    same_box = [getattr(Annotation, k) == args[k] for k in ("class_id", "source", "status") if k in args]
    if same_box:
        cond.append(_has_box(*same_box))  # one box that matches all of them
    reviewed = exists().where(Review.annotation_id == Annotation.id)
    if "reviewed" in args:
        if args["reviewed"]:
            cond.append(_has_box(reviewed))
        else:
            cond.append(_has_box(Annotation.source == AnnotationSource.model, ~reviewed))
    if "failed" in args:
        failed = _has_box(exists().where(Review.annotation_id == Annotation.id, Review.verdict == Verdict.invalid))
        cond.append(failed if args["failed"] else ~failed)
    if "job_id" in args:
        cond.append(Image.job_id == args["job_id"])
    return cond


@bp.route("/images")
class Images(MethodView):
    @bp.arguments(ImageQuery, location="query")
    @bp.response(200, ImagePage)
    def get(self, args, project_id):
        """Images of the project, newest first, filtered by what their boxes and reviews are."""
        require_role(project_id)
        order = Image.id.desc() if args["order"] == "newest" else Image.id.asc()
        q = (select(Image, box_count()).where(Image.project_id == project_id, and_(True, *image_filters(args)))
             .order_by(order))
        return page(q, args, lambda row: Extended(row[0], boxes=row[1]), scalars=False)

    @bp.response(202, JobOut)
    @bp.doc(requestBody={"required": True, "content": {
        "multipart/form-data": {"schema": ImageUpload},
        "application/json": {"schema": UrlsIn},
    }})
    def post(self, project_id):
        """Upload images: multipart `files` (images or zips of images), or JSON `{"urls": [...]}`.

        Answers 202 with one ingest job on the augmentation queue. Its result lists every file's outcome:
        accepted, duplicate (same bytes already in the project) or rejected with the reason."""
        require_role(project_id, Role.annotator)
        if request.mimetype == "multipart/form-data":
            files = uploaded_files()
            if not files:
                raise ApiError(400, "no files: send images or zips in the multipart field 'files'",
                               fields={"files": ["required"]})
            return uploads.ingest_files(celery(), runtime(), db.session, project_id, current_user().id, files)
        if not request.is_json:
            raise ApiError(415, "send multipart/form-data with 'files', or JSON with 'urls'")
        data = load_input(UrlsIn(), request.get_json(silent=True) or {})
        return uploads.ingest_urls(celery(), runtime(), db.session, project_id, current_user().id, data["urls"])


@bp.route("/images/formats")
class ImageFormats(MethodView):
    @bp.response(200, ImageFormatsOut)
    def get(self, project_id):
        """The accepted upload formats and limits."""
        require_role(project_id)
        s = runtime().settings
        return {"formats": sorted(ACCEPTED_FORMATS), "mime_types": sorted(set(ACCEPTED_FORMATS.values())),
                "zip": True, "max_image_bytes": s.max_image_bytes, "max_image_pixels": s.max_image_pixels,
                "max_upload_items": s.max_upload_items, "max_request_bytes": s.max_request_bytes}


@bp.route("/images/<int:image_id>")
class ImageItem(MethodView):
    @bp.response(200, ImageOut)
    def get(self, project_id, image_id):
        require_role(project_id)
        return counted(get_image(project_id, image_id))

    @bp.response(200, ImageDeleted)
    def delete(self, project_id, image_id):
        """Delete the image with all its boxes and their reviews (they describe nothing without it).
        Its stored files are left to the blob collector, which deletes them once no row names them."""
        require_role(project_id, Role.annotator)
        counts = annotations.delete_image(db.session, get_image(project_id, image_id))
        return {"image_id": image_id, **counts}


def _send(key: str, mimetype: str, name: str):
    return send_blob(key, mimetype=mimetype, name=name, etag=key, cache_control=_CACHE,
                     gone="the stored file of this image is missing")


@bp.route("/images/<int:image_id>/file")
class ImageFile(MethodView):
    @bp.doc(**download_doc("image/jpeg", "image/png", description="the stored image"))
    def get(self, project_id, image_id):
        """The stored RGB image (EXIF orientation applied), with ETag and Range support."""
        require_role(project_id)
        image = get_image(project_id, image_id)
        ext = "jpg" if image.format == "JPEG" else "png"
        return _send(image.blob_key, _MIME.get(image.format, "application/octet-stream"), f"{image.id}.{ext}")


@bp.route("/images/<int:image_id>/thumbnail")
class ImageThumbnail(MethodView):
    @bp.doc(**download_doc("image/jpeg", description="the JPEG thumbnail"))
    def get(self, project_id, image_id):
        """A JPEG thumbnail (longest side = the configured thumbnail size)."""
        require_role(project_id)
        image = get_image(project_id, image_id)
        if not image.thumb_key:
            raise ApiError(404, f"image {image_id} has no thumbnail")
        return _send(image.thumb_key, "image/jpeg", f"{image.id}-thumb.jpg")
