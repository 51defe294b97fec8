"""The deploy job (deployment queue)."""

from __future__ import annotations

from workers.context import JobContext, job_task
from services.deploy import deploy


@job_task("deployment.build")
def build_deployment(ctx: JobContext, deployment_id: int, activate: bool = True) -> dict:
    return deploy(ctx, deployment_id, activate)
