"""What annotators work on: classes, label maps, images, annotations and reviews of model output."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.schema.base import Base, str_enum, utcnow


class LabelClass(Base):
    """A class of objects; `group` gathers related classes (logos under a brand)."""

    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_classes_project_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    group: Mapped[str | None] = mapped_column(String(128), index=True)
    color: Mapped[str | None] = mapped_column(String(7))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelMap(Base):
    """An ordered list of classes; a class's id inside the map is its position + 1 (0 is background)."""

    __tablename__ = "label_maps"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_label_maps_project_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    entries: Mapped[list["LabelMapEntry"]] = relationship(
        order_by="LabelMapEntry.position", cascade="all, delete-orphan", lazy="selectin"
    )


class LabelMapEntry(Base):
    __tablename__ = "label_map_entries"
    __table_args__ = (UniqueConstraint("label_map_id", "class_id", name="uq_label_map_entries_map_class"),)

    label_map_id: Mapped[int] = mapped_column(ForeignKey("label_maps.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="RESTRICT"), index=True)

    label_class: Mapped[LabelClass] = relationship(lazy="joined")


class Image(Base):
    """An ingested picture, stored as RGB (JPEG or PNG) with its EXIF orientation applied.

    `sha256` is the hash of the uploaded bytes (duplicates in a project are found by it); `blob_key` is the
    hash of the stored bytes. `annotation_revision` grows with every change to the image's boxes or reviews:
    writers send the revision they saw, and the data revision of a label map sums it.
    """

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "sha256", name="uq_images_project_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(128))
    thumb_key: Mapped[str | None] = mapped_column(String(128))
    width: Mapped[int]
    height: Mapped[int]
    format: Mapped[str] = mapped_column(String(16))  # of the stored bytes: JPEG or PNG
    source_format: Mapped[str] = mapped_column(String(16), default="", server_default="")  # of the upload
    size_bytes: Mapped[int]
    original_name: Mapped[str] = mapped_column(String(512), default="")
    annotation_revision: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)  # the ingest job that added it
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnotationSource(str, enum.Enum):
    human = "human"
    model = "model"


class AnnotationStatus(str, enum.Enum):
    proposed = "proposed"
    accepted = "accepted"
    rejected = "rejected"


class Annotation(Base):
    """A box in pixel coordinates of its image."""

    __tablename__ = "annotations"
    __table_args__ = (CheckConstraint("w > 0 AND h > 0", name="positive_size"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="RESTRICT"), index=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    source: Mapped[AnnotationSource] = mapped_column(str_enum(AnnotationSource, "annotation_source"))
    status: Mapped[AnnotationStatus] = mapped_column(str_enum(AnnotationStatus, "annotation_status"), index=True)
    score: Mapped[float | None] = mapped_column(Float)
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id", ondelete="SET NULL"))
    revision: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Verdict(str, enum.Enum):
    valid = "valid"
    invalid = "invalid"


class Review(Base):
    """An evaluator's verdict on one model prediction; invalid ones form the failed-cases set."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), unique=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    verdict: Mapped[Verdict] = mapped_column(str_enum(Verdict, "verdict"), index=True)
    corrected_box: Mapped[list | None] = mapped_column(JSON)
    corrected_class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
