"""The pre-annotation job (inference queue), with the inference process's warm sessions and images."""

from __future__ import annotations

from services.preannotate import run
from workers.context import JobContext, job_task
from workers.tasks.inference import worker_state


@job_task("preannotate")
def preannotate(ctx: JobContext, deployment_id: int, selection: dict, threshold: float,
                user_id: int | None = None) -> dict:
    _, (models, images) = worker_state()
    return run(ctx, models, images, deployment_id, selection, threshold, user_id)
