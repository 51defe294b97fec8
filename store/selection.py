"""What a label map selects for a dataset, and the data revision: a fingerprint of that selection.

A label map selects the images that have at least one accepted box of one of its classes; the `failed`
subset keeps only those in the failed-cases set (a prediction on them was judged invalid). The data
revision is computed by one aggregate query: every change to an image's boxes or reviews moves its
`annotation_revision` up, and images are immutable, so count, sums of ids and revisions, and the map's
own definition change whenever anything the selection holds changes. It is a fingerprint, not a hash
of every row: cheap enough to compute on every dataset request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from store.schema import Annotation, AnnotationStatus, Image, LabelMap, LabelMapEntry, Review, Verdict

SUBSETS = ("all", "failed")


def selected_image_ids(label_map_id: int, subset: str = "all") -> Select:
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; one of {SUBSETS}")
    map_classes = select(LabelMapEntry.class_id).where(LabelMapEntry.label_map_id == label_map_id)
    q = select(Annotation.image_id).where(
        Annotation.class_id.in_(map_classes), Annotation.status == AnnotationStatus.accepted
    ).distinct()
    if subset == "failed":
        failed = (select(Annotation.image_id).join(Review, Review.annotation_id == Annotation.id)
                  .where(Review.verdict == Verdict.invalid))
        q = q.where(Annotation.image_id.in_(failed))
    return q


def selected_boxes(label_map_id: int, subset: str = "all") -> Select:
    """(image id, label id in the map, x, y, w, h) of every accepted box of the map's classes on the
    selected images, in a stable order: what a dataset handler reads."""
    entry = LabelMapEntry
    return (
        select(Annotation.image_id, (entry.position + 1).label("label"), Annotation.x, Annotation.y, Annotation.w,
               Annotation.h)
        .join(entry, (entry.class_id == Annotation.class_id) & (entry.label_map_id == label_map_id))
        .where(Annotation.status == AnnotationStatus.accepted,
               Annotation.image_id.in_(selected_image_ids(label_map_id, subset)))
        .order_by(Annotation.image_id, Annotation.id)
    )


@dataclass(frozen=True)
class Fingerprint:
    revision: str  # the data revision
    images: int  # how many images the selection holds


def fingerprint(session: Session, label_map: LabelMap, subset: str = "all") -> Fingerprint:
    ids = selected_image_ids(label_map.id, subset)
    count, id_sum, rev_sum, rev_max, id_max = session.execute(
        select(func.count(Image.id), func.coalesce(func.sum(Image.id), 0),
               func.coalesce(func.sum(Image.annotation_revision), 0), func.coalesce(func.max(Image.annotation_revision), 0),
               func.coalesce(func.max(Image.id), 0))
        .where(Image.id.in_(ids))
    ).one()
    definition = [[e.position, e.class_id, e.label_class.name, e.label_class.group] for e in label_map.entries]
    payload = {"label_map": label_map.id, "classes": definition, "subset": subset,
               "images": [int(count), int(id_sum), int(rev_sum), int(rev_max), int(id_max)]}
    return Fingerprint(hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32], int(count))


def data_revision(session: Session, label_map: LabelMap, subset: str = "all") -> str:
    return fingerprint(session, label_map, subset).revision
