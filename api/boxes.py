"""Boxes of an image, guarded by the image's annotation revision, and the review of model predictions.

Every write names the revision the writer last read. The revision is moved on by one conditional UPDATE
before anything else is written, in the same transaction: of two annotators who read revision 7, the
first write wins and the second gets 409 with nothing changed.
"""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select, update

from api.auth import current_user, require_role
from api.blueprint import Blueprint, page
from api.data_schemas import (
    AnnotationOut, AnnotationPage, AnnotationQuery, BoxCreate, BoxPatch, BoxReplace, BoxWritten, FailedCasePage,
    ImageBoxes, ReviewIn, RevisionQuery,
)
from api.errors import ApiError
from api.extensions import db
from api.images import box_count, get_image, image_out
from api.schemas import PageQuery
from handlers.ops import EDGE  # the tolerance of the region check, for boxes too
from store.schema import (
    Annotation, AnnotationSource, AnnotationStatus, Deployment, Image, LabelClass, Review, Role, Verdict,
)
from store.schema.base import utcnow

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


def get_annotation(project_id: int, annotation_id: int) -> Annotation:
    a = db.session.get(Annotation, annotation_id)
    if a is None or db.session.get(Image, a.image_id).project_id != project_id:
        raise ApiError(404, f"annotation {annotation_id} not found in project {project_id}")
    return a


def claim_revision(image: Image, expected: int) -> int:
    """Move the image's revision from `expected` to the next, or 409 (the caller's view is stale)."""
    moved = db.session.execute(
        update(Image).where(Image.id == image.id, Image.annotation_revision == expected)
        .values(annotation_revision=Image.annotation_revision + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        db.session.rollback()
        current = db.session.scalar(select(Image.annotation_revision).where(Image.id == image.id))
        raise ApiError(409, f"image {image.id} is at annotation revision {current}, you sent {expected}: "
                            "someone changed its boxes; reload them and apply your change again",
                       code="stale_revision", current_revision=current)
    return expected + 1


def bump_revision(image_id: int) -> None:
    """Move the image's revision on by one, whatever it was."""
    db.session.execute(update(Image).where(Image.id == image_id)
                       .values(annotation_revision=Image.annotation_revision + 1)
                       .execution_options(synchronize_session=False))


def check_box(image: Image, box: dict, where: str = "") -> dict:
    """Inside the image (clipped within EDGE px), positive size, class and deployment of this project."""
    x, y, w, h = box["x"], box["y"], box["w"], box["h"]
    if x >= image.width or y >= image.height or x + w > image.width + EDGE or y + h > image.height + EDGE:
        raise ApiError(400, f"{where}box [{x}, {y}, {w}, {h}] (x, y, w, h) leaves the {image.width}x{image.height} image",
                       fields={f"{where}x": ["box outside the image"]})
    box["w"], box["h"] = min(w, image.width - x), min(h, image.height - y)
    return box


def check_refs(project_id: int, boxes: list[dict], prefix: str = "") -> None:
    class_ids = {b["class_id"] for b in boxes if "class_id" in b}
    known = set(db.session.scalars(select(LabelClass.id).where(LabelClass.project_id == project_id,
                                                               LabelClass.id.in_(class_ids))))
    bad = {f"{prefix}{i}.class_id" if prefix else "class_id": [f"class {b['class_id']} is not in project {project_id}"]
           for i, b in enumerate(boxes) if "class_id" in b and b["class_id"] not in known}
    deployments = {b["deployment_id"] for b in boxes if b.get("deployment_id")}
    if deployments:
        found = set(db.session.scalars(select(Deployment.id).where(Deployment.project_id == project_id,
                                                                   Deployment.id.in_(deployments))))
        bad.update({f"{prefix}{i}.deployment_id" if prefix else "deployment_id":
                    [f"deployment {b['deployment_id']} is not in project {project_id}"]
                    for i, b in enumerate(boxes) if b.get("deployment_id") and b["deployment_id"] not in found})
    if bad:
        raise ApiError(400, "; ".join(f"{k}: {v[0]}" for k, v in bad.items()), fields=bad)


def new_annotation(image: Image, box: dict) -> Annotation:
    return Annotation(image_id=image.id, created_by=current_user().id, **box)


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
        check_refs(project_id, [data])
        check_box(image, data)
        revision = claim_revision(image, expected)
        a = new_annotation(image, data)
        db.session.add(a)
        db.session.flush()
        return {"revision": revision, "annotation": annotation_out(a)}

    @bp.arguments(BoxReplace)
    @bp.response(200, ImageBoxes)
    def put(self, data, project_id, image_id):
        """Replace all boxes of the image in one step (their reviews go with them)."""
        require_role(project_id, Role.annotator)
        image = get_image(project_id, image_id)
        check_refs(project_id, data["items"], "items.")
        boxes = [check_box(image, b, f"items.{i}.") for i, b in enumerate(data["items"])]
        claim_revision(image, data["revision"])
        for old in db.session.scalars(select(Annotation).where(Annotation.image_id == image.id)):
            db.session.delete(old)
        db.session.add_all(new_annotation(image, b) for b in boxes)
        db.session.flush()
        db.session.refresh(image)
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
        a = get_annotation(project_id, annotation_id)
        return annotation_out(a, db.session.scalar(select(Review).where(Review.annotation_id == a.id)))

    @bp.arguments(BoxPatch)
    @bp.response(200, BoxWritten)
    def patch(self, data, project_id, annotation_id):
        """Move, resize, re-class or accept/reject a box."""
        require_role(project_id, Role.annotator)
        a = get_annotation(project_id, annotation_id)
        image = db.session.get(Image, a.image_id)
        expected = data.pop("revision")
        check_refs(project_id, [data])
        geometry = {k: data.get(k, getattr(a, k)) for k in ("x", "y", "w", "h")}
        check_box(image, geometry)
        revision = claim_revision(image, expected)
        for key, value in {**data, **geometry}.items():
            setattr(a, key, value)
        db.session.flush()
        return {"revision": revision, "annotation": annotation_out(a)}

    @bp.arguments(RevisionQuery, location="query")
    @bp.response(200, BoxWritten)
    def delete(self, args, project_id, annotation_id):
        """Delete a box: `?revision=N` is the image revision you last read."""
        require_role(project_id, Role.annotator)
        a = get_annotation(project_id, annotation_id)
        revision = claim_revision(db.session.get(Image, a.image_id), args["revision"])
        db.session.delete(a)
        db.session.flush()
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
        a = get_annotation(project_id, annotation_id)
        if a.source is not AnnotationSource.model:
            raise ApiError(409, f"annotation {a.id} was drawn by a person; only model predictions are reviewed")
        image = db.session.get(Image, a.image_id)
        review = db.session.scalar(select(Review).where(Review.annotation_id == a.id))
        correction = None
        if data["corrected_box"] or data["corrected_class_id"]:
            if review is not None and review.corrected_box:
                raise ApiError(409, f"prediction {a.id} already has its correction (annotation "
                                    f"{review.corrected_box.get('annotation_id')}); edit that box instead")
            box = dict(data["corrected_box"] or {k: getattr(a, k) for k in ("x", "y", "w", "h")})
            check_box(image, box, "corrected_box.")
            class_id = data["corrected_class_id"] or a.class_id
            check_refs(project_id, [{"class_id": class_id}])
            correction = new_annotation(image, {**box, "class_id": class_id, "source": AnnotationSource.human,
                                                "status": AnnotationStatus.accepted})
            db.session.add(correction)
            db.session.flush()
        if review is None:
            review = Review(annotation_id=a.id)
            db.session.add(review)
        review.verdict, review.note, review.reviewer_id, review.created_at = (
            data["verdict"], data["note"], current_user().id, utcnow())
        if correction is not None:
            review.corrected_box = {**{k: getattr(correction, k) for k in ("x", "y", "w", "h")},
                                    "annotation_id": correction.id}
            review.corrected_class_id = correction.class_id
        a.status = AnnotationStatus.accepted if data["verdict"] is Verdict.valid else AnnotationStatus.rejected
        bump_revision(image.id)  # the failed-cases set and the accepted boxes changed
        db.session.flush()
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
