"""Boxes of an image, guarded by the image's annotation revision, and the review of model predictions.

Every write names the revision the writer last read. The revision is moved on by one conditional UPDATE
before anything else is written, in the same transaction: of two annotators who read revision 7, the
first write wins and the second gets 409 with nothing changed.
"""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from api.auth import current_user, require_role
from api.blueprint import Blueprint, page
from api.data_schemas import (
    AnnotationOut, AnnotationPage, AnnotationQuery, BoxCreate, BoxPatch, BoxReplace, BoxWritten, FailedCasePage,
    ImageBoxes, ReviewIn, RevisionQuery,
)
from api.extensions import db
from api.images import box_count, get_image, image_out
from api.schemas import PageQuery
from services import annotations
from store.schema import Annotation, Image, Review, Role, Verdict

bp = Blueprint("boxes", __name__, url_prefix="/api/projects/<int:project_id>",
               description="Boxes, their revisions, and the review of model predictions")


def review_out(r: Review | None) -> dict | None:
    if r is None:
        return None
    return {"id": r.id, "verdict": r.verdict.value, "corrected_box": r.corrected_box,
            "corrected_class_id": r.corrected_class_id, "note": r.note, "reviewer_id": r.reviewer_id,
            "created_at": r.created_at}


def annotation_out(a: Annotation, review: Review | None = None) -> dict:
    out = {c: getattr(a, c) for c in ("id", "image_id", "class_id", "x", "y", "w", "h", "score", "deployment_id",
                                      "created_by", "created_at", "updated_at")}
    out.update(source=a.source.value, status=a.status.value, review=review_out(review))
    return out


def _with_reviews(q):
    return q.outerjoin(Review, Review.annotation_id == Annotation.id).add_columns(Review)


def boxes_of(image: Image) -> dict:
    rows = db.session.execute(_with_reviews(select(Annotation)).where(Annotation.image_id == image.id)
                              .order_by(Annotation.id)).all()
    return {"image_id": image.id, "revision": image.annotation_revision,
            "items": [annotation_out(a, r) for a, r in rows]}


@bp.route("/images/<int:image_id>/annotations")
class ImageAnnotations(MethodView):
    @bp.response(200, ImageBoxes)
    def get(self, project_id, image_id):
        """The image's boxes and its current revision (send it back with your next write)."""
        require_role(project_id)
        return boxes_of(get_image(project_id, image_id))

    @bp.arguments(BoxCreate)
    @bp.response(201, BoxWritten)
    def post(self, data, project_id, image_id):
        """Add one box."""
        require_role(project_id, Role.annotator)
        image = get_image(project_id, image_id)
        expected = data.pop("revision")
        revision, a = annotations.add_box(db.session, image, data, expected, current_user().id)
        return {"revision": revision, "annotation": annotation_out(a)}

    @bp.arguments(BoxReplace)
    @bp.response(200, ImageBoxes)
    def put(self, data, project_id, image_id):
        """Replace all boxes of the image in one step (their reviews go with them)."""
        require_role(project_id, Role.annotator)
        image = get_image(project_id, image_id)
        annotations.replace_boxes(db.session, image, data["items"], data["revision"], current_user().id)
        return boxes_of(image)


@bp.route("/annotations")
class Annotations(MethodView):
    @bp.arguments(AnnotationQuery, location="query")
    @bp.response(200, AnnotationPage)
    def get(self, args, project_id):
        """Boxes of the project; `source=model&reviewed=false` is the review queue."""
        require_role(project_id)
        q = _with_reviews(select(Annotation)).join(Image, Image.id == Annotation.image_id).where(
            Image.project_id == project_id)
        for key in ("image_id", "class_id", "source", "status"):
            if key in args:
                q = q.where(getattr(Annotation, key) == args[key])
        if "reviewed" in args:
            q = q.where(Review.id.is_not(None) if args["reviewed"] else Review.id.is_(None))
        if "verdict" in args:
            q = q.where(Review.verdict == args["verdict"])
        return page(q.order_by(Annotation.id), args, lambda row: annotation_out(*row), scalars=False)


@bp.route("/annotations/<int:annotation_id>")
class AnnotationItem(MethodView):
    @bp.response(200, AnnotationOut)
    def get(self, project_id, annotation_id):
        require_role(project_id)
        a = annotations.get_annotation(db.session, project_id, annotation_id)
        return annotation_out(a, db.session.scalar(select(Review).where(Review.annotation_id == a.id)))

    @bp.arguments(BoxPatch)
    @bp.response(200, BoxWritten)
    def patch(self, data, project_id, annotation_id):
        """Move, resize, re-class or accept/reject a box."""
        require_role(project_id, Role.annotator)
        a = annotations.get_annotation(db.session, project_id, annotation_id)
        expected = data.pop("revision")
        revision = annotations.change_box(db.session, a, data, expected)
        return {"revision": revision, "annotation": annotation_out(a)}

    @bp.arguments(RevisionQuery, location="query")
    @bp.response(200, BoxWritten)
    def delete(self, args, project_id, annotation_id):
        """Delete a box: `?revision=N` is the image revision you last read."""
        require_role(project_id, Role.annotator)
        a = annotations.get_annotation(db.session, project_id, annotation_id)
        revision = annotations.delete_box(db.session, a, args["revision"])
        return {"revision": revision, "annotation": None}


@bp.route("/annotations/<int:annotation_id>/review")
class AnnotationReview(MethodView):
    @bp.arguments(ReviewIn)
    @bp.response(200, AnnotationOut)
    def put(self, data, project_id, annotation_id):
        """Judge a model prediction. `valid` accepts it; `invalid` rejects it and puts it in the failed-cases
        set. A corrected box (and/or class) adds a human box where the object really is, which the next
        dataset learns from. Judging again replaces the verdict; a correction is made once."""
        require_role(project_id, Role.annotator)
        a = annotations.get_annotation(db.session, project_id, annotation_id)
        review = annotations.review_prediction(db.session, a, data["verdict"], data["note"], current_user().id,
                                               corrected_box=data["corrected_box"],
                                               corrected_class_id=data["corrected_class_id"])
        return annotation_out(a, review)


@bp.route("/failed-cases")
class FailedCases(MethodView):
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, FailedCasePage)
    def get(self, args, project_id):
        """Predictions judged invalid, newest review first; `total` is the size of the set. Datasets can
        draw from this set only (`subset=failed`)."""
        require_role(project_id)
        q = (select(Review, Annotation, Image, box_count()).join(Annotation, Annotation.id == Review.annotation_id)
             .join(Image, Image.id == Annotation.image_id)
             .where(Image.project_id == project_id, Review.verdict == Verdict.invalid)
             .order_by(Review.created_at.desc(), Review.id.desc()))
        return page(q, args, lambda row: {"review": review_out(row[0]), "prediction": annotation_out(row[1], row[0]),
                                          "image": image_out(row[2], row[3])}, scalars=False)
