"""The shapes the API answers, as `TypedDict`s for editors and type checkers (the SDK returns the
decoded JSON itself: a field the server adds later is simply there). `total=False`: the server may omit
optional fields. The OpenAPI document at `/api/openapi.json` is the full reference."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Job(TypedDict, total=False):
    id: str
    kind: str
    queue: str
    status: JobStatus
    progress: float
    message: str | None
    details: dict[str, Any]
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    cancel_requested: bool
    worker: str | None
    project_id: int | None
    user_id: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str


class User(TypedDict, total=False):
    id: int
    name: str
    is_superuser: bool


class Me(TypedDict, total=False):
    user: User
    memberships: list[dict[str, Any]]


class Project(TypedDict, total=False):
    id: int
    name: str
    description: str | None
    role: str
    stats: dict[str, Any]
    stats_updated_at: str | None
    created_at: str


class LabelClass(TypedDict, total=False):
    id: int
    project_id: int
    name: str
    group: str | None
    color: str | None
    description: str | None
    created_at: str


class LabelMapEntry(TypedDict, total=False):
    id: int  # the class id inside the map (position + 1)
    class_id: int
    name: str
    group: str | None


class LabelMap(TypedDict, total=False):
    id: int
    project_id: int
    name: str
    description: str | None
    entries: list[LabelMapEntry]
    created_at: str
    updated_at: str


class Image(TypedDict, total=False):
    id: int
    project_id: int
    original_name: str
    width: int
    height: int
    format: str
    source_format: str
    size_bytes: int
    sha256: str
    revision: int
    boxes: int
    job_id: str | None
    created_by: int
    created_at: str
    file_url: str
    thumbnail_url: str


class FileOutcome(TypedDict, total=False):
    """One uploaded file, zip member or URL, as the ingest job reported it."""
    name: str
    outcome: Literal["accepted", "duplicate", "rejected", "skipped"]
    image_id: int
    reason: str  # when rejected: corrupt, truncated, pixel_limit, too_large, unsupported_format, ...
    message: str


class Upload(TypedDict, total=False):
    """What one `upload` (or COCO import) became: its ingest jobs (one per request the files needed) and
    each file's outcome."""
    jobs: list[Job]
    accepted: int
    duplicate: int
    rejected: int
    skipped: int
    files: list[FileOutcome]
    result: dict[str, Any]  # the COCO import's own counts (boxes, classes created), merged over the jobs


class Review(TypedDict, total=False):
    id: int
    verdict: Literal["valid", "invalid"]
    corrected_box: dict[str, float] | None
    corrected_class_id: int | None
    note: str | None
    reviewer_id: int
    created_at: str


class Box(TypedDict, total=False):
    id: int
    image_id: int
    class_id: int
    x: float
    y: float
    w: float
    h: float
    source: Literal["human", "model"]
    status: Literal["proposed", "accepted", "rejected"]
    score: float | None
    deployment_id: int | None
    created_by: int | None
    created_at: str
    updated_at: str
    review: Review | None


class ImageBoxes(TypedDict, total=False):
    image_id: int
    revision: int
    items: list[Box]


class BoxWritten(TypedDict, total=False):
    revision: int  # the image's new revision: send it with the next write
    annotation: Box | None


class Dataset(TypedDict, total=False):
    key: str
    project_id: int
    name: str
    handler: str
    config: dict[str, Any]
    label_map_id: int
    subset: str
    data_revision: str
    status: Literal["building", "ready", "failed"]
    job_id: str | None
    error: str | None
    sha256: str | None
    size_bytes: int | None
    manifest: dict[str, Any]
    hits: int
    downloads: int
    bytes_served: int
    created_at: str
    last_access_at: str | None


class Checkpoint(TypedDict, total=False):
    id: int
    project_id: int
    name: str
    architecture: str
    task: str
    status: Literal["fresh", "training", "trained", "failed", "cancelled"]
    parent_id: int | None
    source: str
    input_size: int
    seed: int
    preprocessing: dict[str, Any]
    classes: list[str]
    label_map_id: int
    dataset_key: str | None
    has_weights: bool
    params: dict[str, Any]
    metrics: dict[str, Any]
    curve: list[dict[str, Any]]  # one entry per epoch (0: the untrained weights)
    epochs_done: int
    device: dict[str, Any] | None
    job_id: str | None
    created_by: int
    created_at: str
    trained_at: str | None
    lineage: dict[str, Any]
    job: Job | None


class Deployment(TypedDict, total=False):
    id: int
    project_id: int
    checkpoint_id: int
    task: Literal["suggestion", "classification"]
    status: Literal["building", "ready", "failed", "cancelled"]
    active: bool
    preprocessing: dict[str, Any]
    label_map: list[Any]
    max_abs_diff: float | None
    error: str | None
    job_id: str | None
    has_model: bool
    created_by: int
    created_at: str
    activated_at: str | None
    job: Job | None


class Suggestion(TypedDict, total=False):
    annotation: Box
    revision: int
    region: dict[str, float]
    class_name: str
    deployment_id: int
    timings: dict[str, float]  # milliseconds: queue wait, image load, model, worker, store, total


class PipelineRun(TypedDict, total=False):
    pipeline: str
    stages: list[str]
    deployment_id: int | None
    items: list[dict[str, Any]]  # per item: `result`, or `error` {reason, message}
    timings: dict[str, float]
