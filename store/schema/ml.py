"""Built datasets, the checkpoint tree and deployments."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, String, Text
from sqlalchemy import text
from sqlalchemy.orm import Mapped, mapped_column

from store.schema.base import Base, str_enum, utcnow


class DatasetStatus(str, enum.Enum):
    building = "building"
    ready = "ready"
    failed = "failed"


class Dataset(Base):
    """A built dataset, identified by the hash of its canonical definition (the cache key)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    handler: Mapped[str] = mapped_column(String(64))
    handler_version: Mapped[int]
    config: Mapped[dict] = mapped_column(default=dict)
    label_map_id: Mapped[int | None] = mapped_column(ForeignKey("label_maps.id", ondelete="SET NULL"))
    subset: Mapped[str] = mapped_column(String(16), default="all", server_default="all")  # all | failed
    data_revision: Mapped[str] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)  # why the last build failed
    status: Mapped[DatasetStatus] = mapped_column(str_enum(DatasetStatus, "dataset_status"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(36))
    blob_key: Mapped[str | None] = mapped_column(String(128))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    manifest: Mapped[dict] = mapped_column(default=dict)
    hits: Mapped[int] = mapped_column(default=0)
    downloads: Mapped[int] = mapped_column(default=0)
    bytes_served: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_access_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CheckpointStatus(str, enum.Enum):
    fresh = "fresh"          # initialised or uploaded, not trained here
    training = "training"
    trained = "trained"      # immutable from here on
    cancelled = "cancelled"
    failed = "failed"


class Checkpoint(Base):
    """A node of the model tree. `weights_key` names a `.keras` blob; None means the architecture's
    deterministic initialisation with `config["seed"]` (roots made from an architecture, and forks of them).
    `classes` are the class names its head predicts, in label-map order; `dataset_key` keeps naming the
    training data after the dataset is evicted from the cache. `state` is a running job's resume point."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    architecture: Mapped[str] = mapped_column(String(64))
    status: Mapped[CheckpointStatus] = mapped_column(str_enum(CheckpointStatus, "checkpoint_status"))
    label_map_id: Mapped[int | None] = mapped_column(ForeignKey("label_maps.id", ondelete="SET NULL"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), index=True)
    weights_key: Mapped[str | None] = mapped_column(String(128))
    classes: Mapped[list] = mapped_column(default=list)
    config: Mapped[dict] = mapped_column(default=dict)  # source, input_size, seed
    dataset_key: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[dict] = mapped_column(default=dict)  # epochs_done, state_key, early stopping, device
    params: Mapped[dict] = mapped_column(default=dict)  # the training request
    metrics: Mapped[dict] = mapped_column(default=dict)
    curve: Mapped[list] = mapped_column(default=list)
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    trained_at: Mapped[datetime | None]


class DeploymentTask(str, enum.Enum):
    suggestion = "suggestion"
    classification = "classification"
    detection = "detection"


class DeploymentStatus(str, enum.Enum):
    building = "building"
    ready = "ready"
    failed = "failed"
    cancelled = "cancelled"


class Deployment(Base):
    """An ONNX export of a checkpoint. At most one per (project, task) is active: a unique partial index
    keeps that true whoever writes the rows."""

    __tablename__ = "deployments"
    __table_args__ = (
        Index("uq_deployments_one_active", "project_id", "task", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="RESTRICT"), index=True)
    task: Mapped[DeploymentTask] = mapped_column(str_enum(DeploymentTask, "deployment_task"))
    status: Mapped[DeploymentStatus] = mapped_column(str_enum(DeploymentStatus, "deployment_status"),
                                                     default=DeploymentStatus.building)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    model_key: Mapped[str | None] = mapped_column(String(128))
    preprocessing: Mapped[dict] = mapped_column(default=dict)
    label_map: Mapped[list] = mapped_column(default=list)
    max_abs_diff: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)  # why the deployment was refused
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]


class EvaluationStatus(str, enum.Enum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Evaluation(Base):
    """COCO figures of a checkpoint (its Keras weights, or one of its deployments' ONNX model) on a selection
    of labelled images, kept so that checkpoints of the tree compare on the same held-out images."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"), index=True)
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id", ondelete="SET NULL"))
    status: Mapped[EvaluationStatus] = mapped_column(str_enum(EvaluationStatus, "evaluation_status"),
                                                     default=EvaluationStatus.running)
    selection: Mapped[dict] = mapped_column(default=dict)  # label map + subset, or image ids
    metrics: Mapped[dict] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class LabelStudioLink(Base):
    """A project's Label Studio: where its uploaded files are (`url`) and the API key that reads them, from
    Label Studio's `/setup` or set in loopline; and the training recipe its "Start training" runs. The key is
    a secret: the API never answers it, only whether one is set."""

    __tablename__ = "label_studio_links"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str | None] = mapped_column(String(2048))
    ls_project: Mapped[int | None] = mapped_column(BigInteger)  # Label Studio's project id, from /setup or set
    api_key: Mapped[str | None] = mapped_column(Text)
    recipe: Mapped[dict | None]  # {"dataset": {name, handler, config, label_map_id, subset}, "checkpoint_id", "epochs"}
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LabelStudioImport(Base):
    """A Label Studio annotation imported as boxes: which boxes it became and the digest of its result, so the
    same event again changes nothing and an update replaces exactly those boxes."""

    __tablename__ = "label_studio_imports"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    annotation: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Label Studio's annotation id
    task: Mapped[int] = mapped_column(BigInteger)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    box_ids: Mapped[list] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
