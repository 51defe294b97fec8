"""The COCO part of an ingest job: classes mapped (or created) by name, boxes attached to the images
the same job accepted, matched by file name. Imported boxes are human, accepted ground truth."""

from __future__ import annotations

from pathlib import PurePosixPath

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from handlers.coco import CocoDataset, CocoImage
from store.schema import Annotation, AnnotationSource, AnnotationStatus, Image, LabelClass

TOLERANCE = 1.0  # px a box may stick out of its image before it is refused rather than clipped


def resolve_classes(sessions, project_id: int, coco: CocoDataset) -> tuple[dict[int, int], list[str]]:
    """COCO category id → class id, creating missing classes (group = supercategory). Returns the map
    and the names created."""
    created: list[str] = []
    mapping: dict[int, int] = {}
    with sessions() as session:
        for cat in coco.categories:
            class_id = session.scalar(select(LabelClass.id).where(LabelClass.project_id == project_id, LabelClass.name == cat.name))
            if class_id is None:
                row = LabelClass(project_id=project_id, name=cat.name, group=cat.supercategory or None)
                session.add(row)
                try:
                    session.commit()
                    class_id = row.id
                    created.append(cat.name)
                except IntegrityError:  # created concurrently by another import
                    session.rollback()
                    class_id = session.scalar(
                        select(LabelClass.id).where(LabelClass.project_id == project_id, LabelClass.name == cat.name)
                    )
            mapping[cat.id] = class_id
    return mapping, created


class CocoAttacher:
    def __init__(self, sessions, coco: CocoDataset, classes: dict[int, int], user_id: int | None):
        self.sessions, self.classes, self.user_id = sessions, classes, user_id
        self.by_name = coco.image_by_name()
        self.matched: set[str] = set()

    def attach(self, entry: dict) -> None:
        """Add the COCO boxes of an accepted image; writes `boxes` (and `box_problem`) into its entry."""
        if entry["outcome"] != "accepted":
            return
        name = PurePosixPath(entry["name"].replace("\\", "/")).name
        spec = self.by_name.get(name)
        if spec is None:
            return
        self.matched.add(name)
        with self.sessions() as session:
            image = session.get(Image, entry["image_id"])
            if session.scalar(select(func.count()).select_from(Annotation).where(Annotation.image_id == image.id)):
                entry["boxes"] = 0  # boxes from an earlier attempt of this job are already there
                return
            boxes, problem = self._boxes(spec, image)
            if problem:
                entry["box_problem"] = problem
            for b in boxes:
                session.add(Annotation(
                    image_id=image.id, class_id=self.classes[b.category_id], x=b.x, y=b.y, w=b.w, h=b.h,
                    source=AnnotationSource.human, status=AnnotationStatus.accepted, created_by=self.user_id,
                ))
            if boxes:
                session.execute(update(Image).where(Image.id == image.id)
                                .values(annotation_revision=Image.annotation_revision + 1))
            session.commit()
            entry["boxes"] = len(boxes)

    def _boxes(self, spec: CocoImage, image: Image):
        if spec.width and spec.height and (spec.width, spec.height) != (image.width, image.height):
            return [], (f"the COCO file says {spec.width}x{spec.height} but the image is {image.width}x{image.height} "
                        "(after EXIF orientation); its boxes were not imported")
        kept, dropped = [], 0
        for b in spec.boxes:
            if b.x + b.w > image.width + TOLERANCE or b.y + b.h > image.height + TOLERANCE:
                dropped += 1
                continue
            w, h = min(b.w, image.width - b.x), min(b.h, image.height - b.y)
            if w <= 0 or h <= 0:
                dropped += 1
                continue
            kept.append(type(b)(b.category_id, b.x, b.y, w, h))
        return kept, (f"{dropped} box(es) outside the image were dropped" if dropped else None)

    def missing(self) -> list[str]:
        """COCO images no uploaded file matched."""
        return sorted(set(self.by_name) - self.matched)
