"""The dataset build job (augmentation queue)."""

from __future__ import annotations

from sqlalchemy import update

from store.schema import Dataset, DatasetStatus
from workers.context import JobContext, job_task
from services.dataset_build import build
from services.datasets import evict


@job_task("dataset.build")
def build_dataset(ctx: JobContext, dataset_id: int) -> dict:
    settings = ctx.rt.settings
    with ctx.rt.sessions() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise RuntimeError(f"dataset {dataset_id} was deleted before its build ran")
        if dataset.status is DatasetStatus.ready:
            return {"key": dataset.key, "size_bytes": dataset.size_bytes, "sha256": dataset.sha256, "built": False}
        if dataset.job_id != ctx.id:
            raise RuntimeError(f"dataset {dataset.key} is being built by job {dataset.job_id} now")
        ctx.progress(0, 1, "reading the selection")
        # A build that fails or is cancelled raises; the job's end settles the row (services.settle).
        out = build(session, ctx.rt.blobs, dataset, settings.work_dir,
                    lambda done, total: ctx.progress(done, total, f"{done}/{total} images"))
        published = _publish(session, dataset, **out)
        if not published:
            raise RuntimeError(f"dataset {dataset.key} was deleted or rebuilt by another job meanwhile")
        evicted = evict(ctx.rt, settings.dataset_cache_bytes, keep=frozenset({dataset.key}))
    return {"key": dataset.key, "size_bytes": out["size_bytes"], "sha256": out["sha256"],
            "records": out["manifest"]["records"], "objects": out["manifest"]["objects"], "evicted": evicted,
            "built": True}


def _publish(session, dataset: Dataset, **values) -> bool:
    """Publish the row, only if this job still owns the build (one UPDATE)."""
    done = session.execute(
        update(Dataset).where(Dataset.id == dataset.id, Dataset.status == DatasetStatus.building,
                              Dataset.job_id == dataset.job_id).values(status=DatasetStatus.ready, error=None, **values)
    ).rowcount
    session.commit()
    return bool(done)
