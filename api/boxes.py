"""Boxes of an image, guarded by the image's annotation revision, and the review of model predictions.

Every write names the revision the writer last read. The revision is moved on by one conditional UPDATE
before anything else is written, in the same transaction: of two annotators who read revision 7, the
first write wins and the second gets 409 with nothing changed.
"""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from api.auth import current_user, require_role
from api.blueprint import Blueprint, Extended, page
from api.data_schemas import (
    AnnotationOut, AnnotationPage, AnnotationQuery, BoxCreate, BoxPatch, BoxReplace, BoxWritten, FailedCasePage,
    ImageBoxes, ReviewIn, RevisionQuery,
)
from api.extensions import db
from api.images import box_count, get_image
from api.schemas import PageQuery
from services import annotations
from store.schema import Annotation, Image, Review, Role, Verdict

bp = Blueprint("boxes", __name__, url_prefix="/api/projects/<int:project_id>",
               description="Boxes, their revisions, and the review of model predictions")


def _with_reviews(q):
    return q.outerjoin(Review, Review.annotation_id == Annotation.id).add_columns(Review)


def reviewed(a: Annotation, review: Review | None) -> Extended:
    """The box with its review, as AnnotationOut dumps it (a box dumped alone shows `review: null`)."""
    return Extended(a, review=review)


def boxes_of(image: Image) -> Extended:
    """The image with its boxes, as ImageBoxes dumps it."""
    rows = db.session.execute(_with_reviews(select(Annotation)).where(Annotation.image_id == image.id)
                              .order_by(Annotation.id)).all()
    return Extended(image, items=[reviewed(a, r) for a, r in rows])


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
        return {"revision": revision, "annotation": a}

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
        return page(q.order_by(Annotation.id), args, lambda row: reviewed(*row), scalars=False)


@bp.route("/annotations/<int:annotation_id>")
class AnnotationItem(MethodView):
    @bp.response(200, AnnotationOut)
    def get(self, project_id, annotation_id):
        require_role(project_id)
        a = annotations.get_annotation(db.session, project_id, annotation_id)
        return reviewed(a, db.session.scalar(select(Review).where(Review.annotation_id == a.id)))

    @bp.arguments(BoxPatch)
    @bp.response(200, BoxWritten)
    def patch(self, data, project_id, annotation_id):
        """Move, resize, re-class or accept/reject a box."""
        require_role(project_id, Role.annotator)
        a = annotations.get_annotation(db.session, project_id, annotation_id)
        expected = data.pop("revision")
        revision = annotations.change_box(db.session, a, data, expected)
        return {"revision": revision, "annotation": a}

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
        return reviewed(a, review)


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
        return page(q, args, lambda row: {"review": row[0], "prediction": reviewed(row[1], row[0]),
                                          "image": Extended(row[2], boxes=row[3])}, scalars=False)
