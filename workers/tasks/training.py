"""The training job (training queue)."""

from __future__ import annotations

from workers.context import JobContext, job_task
from services.training import train


@job_task("checkpoint.train")
def train_checkpoint(ctx: JobContext, checkpoint_id: int) -> dict:
    return train(ctx, checkpoint_id)
