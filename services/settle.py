"""What each job kind's end means for its resource, written once per kind and called by
`services.lifecycle.end_job` in the transaction that ends the job.

- `dataset.build`: a build that did not succeed leaves its dataset `failed` with the reason, which the next
  request for the same definition builds again; a succeeded build has already published the row.
- `checkpoint.train`: failed → the checkpoint is trainable again (`failed`, starting weights kept);
  cancelled → `cancelled` with the weights of its last finished epoch, or `fresh` if none had finished.
- `deployment.build`: failed or cancelled → the deployment says so (it never stays `building`).
- `ingest`: the upload's staging folder is removed once the end is committed.
- `evaluation`: failed or cancelled → the evaluation says so (`services.evaluation.settle`).

Hooks touch only rows still owned by this job (`job_id` = the job's id and the in-progress state), so a
hook that runs after the task already settled the row, or for a resource a newer job took over, is a no-op.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import select, update

from store.db import after_commit
from store.schema import (
    Checkpoint, CheckpointStatus, Dataset, DatasetStatus, Deployment, DeploymentStatus, Job, JobStatus,
)
from store.schema.base import utcnow
from store.staging import Staging


def _reason(job: Job) -> str:
    return job.error or job.message or job.status.value


def _dataset(runtime, session, job: Job) -> None:
    if job.status is JobStatus.succeeded:
        return
    why = "the build was cancelled" if job.status is JobStatus.cancelled else _reason(job)
    session.execute(update(Dataset).where(Dataset.job_id == job.id, Dataset.status == DatasetStatus.building)
                    .values(status=DatasetStatus.failed, error=why))


def leave_training(session, checkpoint_id: int, job_id: str, status: CheckpointStatus) -> None:
    """End a run that did not finish, if the checkpoint still trains in that job. Cancelled after an epoch:
    the last finished epoch's weights (`state["state_key"]`) become the checkpoint's. Cancelled before any
    epoch finished (still queued, or in its first): nothing changed, so it is `fresh` and trainable again.
    Failed: the starting weights stay (the saved epochs stay in `state` for a look)."""
    state = session.scalar(select(Checkpoint.state).where(Checkpoint.id == checkpoint_id)) or {}
    extra = {}
    if status is CheckpointStatus.cancelled:
        if state.get("state_key"):
            extra = {"weights_key": state["state_key"]}
        else:
            status = CheckpointStatus.fresh
    session.execute(update(Checkpoint).where(Checkpoint.id == checkpoint_id, Checkpoint.job_id == job_id,
                                             Checkpoint.status == CheckpointStatus.training)
                    .values(**checkpoint_end_values(status, **extra)))


def checkpoint_end_values(status: CheckpointStatus, **values) -> dict:
    """Column values of a checkpoint leaving `training`."""
    return {"status": status, **({"trained_at": utcnow()} if status is CheckpointStatus.trained else {}), **values}


def _checkpoint(runtime, session, job: Job) -> None:
    if job.status is JobStatus.succeeded:
        return
    status = CheckpointStatus.cancelled if job.status is JobStatus.cancelled else CheckpointStatus.failed
    checkpoint_id = (job.params or {}).get("checkpoint_id")
    if checkpoint_id is not None:
        leave_training(session, checkpoint_id, job.id, status)


def _deployment(runtime, session, job: Job) -> None:
    if job.status is JobStatus.succeeded:
        return
    values = ({"status": DeploymentStatus.cancelled} if job.status is JobStatus.cancelled
              else {"status": DeploymentStatus.failed, "error": _reason(job)})
    session.execute(update(Deployment).where(Deployment.job_id == job.id,
                                             Deployment.status == DeploymentStatus.building).values(**values))


def _ingest(runtime, session, job: Job) -> None:
    upload = (job.params or {}).get("staging")
    if upload:
        staging = Staging(runtime.settings.staging_dir)
        after_commit(session, lambda: staging.remove(upload))


def _evaluation(runtime, session, job: Job) -> None:
    from services.evaluation import settle as settle_evaluation

    settle_evaluation(runtime, session, job)


SETTLE: dict[str, Callable] = {
    "dataset.build": _dataset,
    "checkpoint.train": _checkpoint,
    "deployment.build": _deployment,
    "ingest": _ingest,
    "evaluation": _evaluation,
}


def settle(runtime, session, job: Job) -> None:
    hook = SETTLE.get(job.kind)
    if hook is not None:
        hook(runtime, session, job)
