"""The job kinds: which queue each runs on. Task names and Celery routes are derived from this table,
so the API can enqueue by name without importing task modules (and their heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass

from services.queues import QUEUES, Queue


@dataclass(frozen=True)
class JobKind:
    name: str
    description: str
    queue: Queue | None = None  # None: the job runs on whichever queue the caller names (the probe)
    # a batch job on the interactive inference queue: its message never expires, and after a killed worker it
    # is sent again however old it is (the queue's expiry is for work nobody waits for any more)
    batch: bool = False

    def queues(self) -> list[Queue]:
        return [self.queue] if self.queue else list(Queue)

    def task_name(self, queue: Queue) -> str:
        if queue not in self.queues():
            raise ValueError(f"job kind {self.name!r} does not run on queue {queue.value!r}")
        return f"loopline.{self.name}" if self.queue else f"loopline.{self.name}.{queue.value}"


KINDS: dict[str, JobKind] = {
    k.name: k
    for k in [
        JobKind(
            "probe",
            "reports the worker's host, pool and versions, round-trips the catalog and Redis, "
            "and recounts the project's statistics when a project is given",
        ),
        JobKind(
            "ingest",
            "checks, converts, thumbnails and stores uploaded images, zips and URLs; one outcome per file",
            Queue.augmentation,
        ),
        JobKind(
            "dataset.build",
            "builds a dataset with its handler into TFRecord shards, label map and manifest, zipped and cached",
            Queue.augmentation,
        ),
        JobKind(
            "checkpoint.train",
            "trains a checkpoint on a cached dataset, saving every epoch so a redelivered job resumes",
            Queue.training,
        ),
        JobKind(
            "labelstudio.train",
            "Label Studio's Start training: builds the project's recipe dataset on the current boxes, forks the "
            "recipe checkpoint and starts its training job",
            Queue.training,
        ),
        JobKind(
            "deployment.build",
            "exports a checkpoint to ONNX, checks it against Keras, stores it and makes it the active model",
            Queue.deployment,
        ),
        JobKind(
            "evaluation",
            "scores a detector checkpoint or deployment on labelled images with COCO mAP (pycocotools' COCOeval)",
            Queue.deployment,
        ),
        JobKind(
            "preannotate",
            "runs the active detector over images and stores its detections as proposed boxes for review",
            Queue.inference, batch=True,
        ),
    ]
}


def get_kind(name: str) -> JobKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}; known: {sorted(KINDS)}") from None


def task_routes() -> dict[str, dict[str, str]]:
    from services.calls import CALLS, task_name
    from services.pipelines import STAGES, stage_task_name

    routes = {kind.task_name(q): q for kind in KINDS.values() for q in kind.queues()}
    routes.update({task_name(c): q for c, q in CALLS.items()})
    routes.update({stage_task_name(s): Queue.inference for s in STAGES})  # pipeline stages
    return {name: {"queue": q.value, "routing_key": q.value} for name, q in routes.items()}


def task_options(queue: Queue) -> dict:
    """Task-class options a queue prescribes (acks, limits)."""
    s = QUEUES[queue]
    return {
        "acks_late": s.acks_late,
        "reject_on_worker_lost": s.reject_on_worker_lost,
        "time_limit": s.time_limit,
        "soft_time_limit": s.soft_time_limit,
    }


def message_options(queue: Queue, kind: JobKind | None = None) -> dict:
    """Per-message options a queue prescribes (expiry of interactive work; none for a batch job)."""
    s = QUEUES[queue]
    return {"expires": s.expires} if s.expires and not (kind and kind.batch) else {}
