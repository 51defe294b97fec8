"""Label Studio's Start training (training queue: it waits on the dataset build, which runs elsewhere)."""

from __future__ import annotations

from celery import current_app

from services.labelstudio import run_recipe
from workers.context import JobContext, job_task


@job_task("labelstudio.train")
def train_recipe(ctx: JobContext, recipe: dict, user_id: int | None = None) -> dict:
    return run_recipe(ctx, current_app, recipe, user_id)
