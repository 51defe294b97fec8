"""Boxes and their review: every write to an image's boxes, in the caller's transaction.

An image carries an annotation revision; every write names the revision its author last read and moves it
on by one (`claim_revision`), so two people editing one image never overwrite each other unseen (a stale
write is a 409 with the current revision). A box lies inside its image (clipped within `EDGE` px) and names
a class and deployment of the image's project. A review judges a model prediction: `valid` accepts it,
`invalid` rejects it into the failed-cases set; a correction adds the human box where the object really is.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from handlers.ops import EDGE  # the tolerance of the region check, for boxes too
from services.errors import CommandError
from store.schema import (
    Annotation, AnnotationSource, AnnotationStatus, Deployment, Image, LabelClass, Review, Verdict,
)
from store.schema.base import utcnow


def get_annotation(session, project_id: int, annotation_id: int) -> Annotation:
    a = session.get(Annotation, annotation_id)
    if a is None or session.get(Image, a.image_id).project_id != project_id:
        raise CommandError(404, f"annotation {annotation_id} not found in project {project_id}")
    return a


def claim_revision(session, image: Image, expected: int) -> int:
    """Move the image's revision from `expected` to the next, or 409 (the caller's view is stale)."""
    moved = session.execute(
        update(Image).where(Image.id == image.id, Image.annotation_revision == expected)
        .values(annotation_revision=Image.annotation_revision + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        current = session.scalar(select(Image.annotation_revision).where(Image.id == image.id))
        raise CommandError(409, f"image {image.id} is at annotation revision {current}, you sent {expected}: "
                                "someone changed its boxes; reload them and apply your change again",
                           code="stale_revision", current_revision=current)
    return expected + 1


def bump_revision(session, image_id: int) -> None:
    """Move the image's revision on by one, whatever it was."""
    session.execute(update(Image).where(Image.id == image_id)
                    .values(annotation_revision=Image.annotation_revision + 1)
                    .execution_options(synchronize_session=False))


def check_box(image: Image, box: dict, where: str = "") -> dict:
    """Inside the image (clipped within EDGE px) and of positive size; returns the clipped box."""
    x, y, w, h = box["x"], box["y"], box["w"], box["h"]
    if x >= image.width or y >= image.height or x + w > image.width + EDGE or y + h > image.height + EDGE:
        raise CommandError(400, f"{where}box [{x}, {y}, {w}, {h}] (x, y, w, h) leaves the {image.width}x"
                                f"{image.height} image", fields={f"{where}x": ["box outside the image"]})
    box["w"], box["h"] = min(w, image.width - x), min(h, image.height - y)
    return box


def check_refs(session, project_id: int, boxes: list[dict], prefix: str = "") -> None:
    """Every class and deployment the boxes name belongs to the project (400 naming each that does not)."""
    class_ids = {b["class_id"] for b in boxes if "class_id" in b}
    known = set(session.scalars(select(LabelClass.id).where(LabelClass.project_id == project_id,
                                                            LabelClass.id.in_(class_ids))))
    bad = {f"{prefix}{i}.class_id" if prefix else "class_id": [f"class {b['class_id']} is not in project {project_id}"]
           for i, b in enumerate(boxes) if "class_id" in b and b["class_id"] not in known}
    deployments = {b["deployment_id"] for b in boxes if b.get("deployment_id")}
    if deployments:
        found = set(session.scalars(select(Deployment.id).where(Deployment.project_id == project_id,
                                                                Deployment.id.in_(deployments))))
        bad.update({f"{prefix}{i}.deployment_id" if prefix else "deployment_id":
                    [f"deployment {b['deployment_id']} is not in project {project_id}"]
                    for i, b in enumerate(boxes) if b.get("deployment_id") and b["deployment_id"] not in found})
    if bad:
        raise CommandError(400, "; ".join(f"{k}: {v[0]}" for k, v in bad.items()), fields=bad)


def add_box(session, image: Image, box: dict, expected: int, user_id: int) -> tuple[int, Annotation]:
    """One more box; (the image's new revision, the box)."""
    check_refs(session, image.project_id, [box])
    check_box(image, box)
    revision = claim_revision(session, image, expected)
    a = Annotation(image_id=image.id, created_by=user_id, **box)
    session.add(a)
    session.flush()
    return revision, a


def replace_boxes(session, image: Image, boxes: list[dict], expected: int, user_id: int) -> None:
    """All of the image's boxes at once (their reviews go with them)."""
    check_refs(session, image.project_id, boxes, "items.")
    boxes = [check_box(image, b, f"items.{i}.") for i, b in enumerate(boxes)]
    claim_revision(session, image, expected)
    for old in session.scalars(select(Annotation).where(Annotation.image_id == image.id)):
        session.delete(old)
    session.add_all(Annotation(image_id=image.id, created_by=user_id, **b) for b in boxes)
    session.flush()
    session.refresh(image)


def change_box(session, a: Annotation, changes: dict, expected: int) -> int:
    """Move, resize, re-class or accept/reject a box; the image's new revision."""
    image = session.get(Image, a.image_id)
    check_refs(session, image.project_id, [changes])
    geometry = check_box(image, {k: changes.get(k, getattr(a, k)) for k in ("x", "y", "w", "h")})
    revision = claim_revision(session, image, expected)
    for key, value in {**changes, **geometry}.items():
        setattr(a, key, value)
    session.flush()
    return revision


def delete_box(session, a: Annotation, expected: int) -> int:
    revision = claim_revision(session, session.get(Image, a.image_id), expected)
    session.delete(a)
    session.flush()
    return revision


def review_prediction(session, a: Annotation, verdict: Verdict, note: str, user_id: int, *,
                      corrected_box: dict | None = None, corrected_class_id: int | None = None) -> Review:
    """Judge a model prediction. Judging again replaces the verdict; a correction is made once."""
    if a.source is not AnnotationSource.model:
        raise CommandError(409, f"annotation {a.id} was drawn by a person; only model predictions are reviewed")
    image = session.get(Image, a.image_id)
    review = session.scalar(select(Review).where(Review.annotation_id == a.id))
    correction = None
    if corrected_box or corrected_class_id:
        if review is not None and review.corrected_box:
            raise CommandError(409, f"prediction {a.id} already has its correction (annotation "
                                    f"{review.corrected_box.get('annotation_id')}); edit that box instead")
        box = dict(corrected_box or {k: getattr(a, k) for k in ("x", "y", "w", "h")})
        check_box(image, box, "corrected_box.")
        class_id = corrected_class_id or a.class_id
        check_refs(session, image.project_id, [{"class_id": class_id}])
        correction = Annotation(image_id=image.id, created_by=user_id, class_id=class_id,
                                source=AnnotationSource.human, status=AnnotationStatus.accepted, **box)
        session.add(correction)
        session.flush()
    if review is None:
        review = Review(annotation_id=a.id)
        session.add(review)
    review.verdict, review.note, review.reviewer_id, review.created_at = verdict, note, user_id, utcnow()
    if correction is not None:
        review.corrected_box = {**{k: getattr(correction, k) for k in ("x", "y", "w", "h")},
                                "annotation_id": correction.id}
        review.corrected_class_id = correction.class_id
    a.status = AnnotationStatus.accepted if verdict is Verdict.valid else AnnotationStatus.rejected
    bump_revision(session, image.id)  # the failed-cases set and the accepted boxes changed
    session.flush()
    return review


def delete_image(session, image: Image) -> dict:
    """The image goes with all its boxes and their reviews (they describe nothing without it); its stored
    files are left to the blob collector, which deletes them once no row names them. Returns the counts."""
    boxes = select(Annotation.id).where(Annotation.image_id == image.id)
    counts = {
        "annotations_deleted": session.scalar(select(func.count()).select_from(boxes.subquery())),
        "reviews_deleted": session.scalar(select(func.count()).select_from(Review).where(Review.annotation_id.in_(boxes))),
    }
    session.delete(image)  # boxes and reviews go by ON DELETE CASCADE
    session.flush()
    return counts
