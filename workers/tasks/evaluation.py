"""The evaluation job (deployment queue: a checkpoint is run with TensorFlow)."""

from __future__ import annotations

from services.evaluation import run
from workers.context import JobContext, job_task


@job_task("evaluation")
def evaluate(ctx: JobContext, evaluation_id: int) -> dict:
    return run(ctx, evaluation_id)
