"""Class examples as pictures: `GET .../annotations/<id>/crop?size=N`, the box cut from its image (a JPEG
whose longest side is N). The rules are `services.crops.example_crop`; this view parses, calls it, and
answers the bytes, or 304 when the page already holds them (the ETag says what the pixels depend on)."""

from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import require_role
from api.blueprint import Blueprint
from api.extensions import db, runtime
from api.schemas import Strict
from services import crops

bp = Blueprint("crops", __name__, url_prefix="/api/projects/<int:project_id>",
               description="Boxes cut out of their images (class examples)")
# The URL stays the same while a box moves, so unlike the immutable thumbnail the answer is revalidated
# (no-cache) against its strong ETag: the same box is a 304 without decoding anything.
CACHE = "private, no-cache"


class CropQuery(Strict):
    size = fields.Integer(load_default=crops.DEFAULT_SIZE,
                          validate=validate.Range(min=crops.MIN_SIZE, max=crops.MAX_SIZE),
                          metadata={"description": "the longest side of the crop in pixels"})


@bp.route("/annotations/<int:annotation_id>/crop")
class AnnotationCrop(MethodView):
    @bp.arguments(CropQuery, location="query")
    @bp.doc(responses={
        "200": {"description": "the box (with a 10% margin) as JPEG, longest side = size",
                "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        "304": {"description": "not modified: `If-None-Match` names the current ETag"},
    })
    def get(self, args, project_id, annotation_id):
        """The box cut out of its image and scaled to fit size x size (never upscaled), with an ETag
        that changes when the box, the image or the size does."""
        require_role(project_id)
        crop = crops.example_crop(db.session, project_id, annotation_id, args["size"])
        headers = {"ETag": f'"{crop.etag}"', "Cache-Control": CACHE}
        if crop.etag in request.if_none_match:
            return Response(status=304, headers=headers)
        return Response(crop.jpeg(runtime().blobs), mimetype="image/jpeg", headers=headers)
