"""Deployments as the API, the deploy job and the inference pool share them: request, activate (and roll
back), the active deployment of a project's task. No TensorFlow.

A deployment is an ONNX export of one checkpoint with the preprocessing spec and the label map (class ids
and names, in the order of the model's class scores) it answers with. At most one per (project, task) is
active; activation flips the flags in one transaction and then publishes the active id in Redis, where
inference workers look it up on every request (one GET) and reload only when it changes.
"""

from __future__ import annotations

from sqlalchemy import select, update

from models.architectures import get_architecture
from store.schema import Checkpoint, Deployment, DeploymentStatus, DeploymentTask, LabelClass
from store.schema.base import utcnow
from services import jobs as job_service
from services.checkpoints import preprocessing
from services.outbox import send_after_commit
from store.db import after_commit


class DeployError(ValueError):
    """The checkpoint cannot be deployed; the message says why."""


def class_map(session, checkpoint: Checkpoint) -> list[dict]:
    """[{"class_id", "name"}] in the order of the model's class scores, by name in the project."""
    by_name = {c.name: c.id for c in session.scalars(select(LabelClass).where(
        LabelClass.project_id == checkpoint.project_id, LabelClass.name.in_(list(checkpoint.classes))))}
    missing = [n for n in checkpoint.classes if n not in by_name]
    if missing:
        raise DeployError(f"classes {missing} of checkpoint {checkpoint.id} are no longer in the project")
    return [{"class_id": by_name[n], "name": n} for n in checkpoint.classes]


def request_deployment(celery, runtime, session, checkpoint: Checkpoint, *, activate: bool, user_id) -> Deployment:
    if checkpoint.weights_key is None:
        raise DeployError(f"checkpoint {checkpoint.id} has no weights file yet (its weights are the "
                          f"{checkpoint.architecture} initialisation); train it first")
    if checkpoint.status.value in ("training", "failed"):
        raise DeployError(f"checkpoint {checkpoint.id} is {checkpoint.status.value}; deploy one with final weights")
    architecture = get_architecture(checkpoint.architecture)
    deployment = Deployment(
        project_id=checkpoint.project_id, checkpoint_id=checkpoint.id, task=DeploymentTask(architecture.task),
        status=DeploymentStatus.building, active=False,
        preprocessing=preprocessing(checkpoint),
        label_map=class_map(session, checkpoint), created_by=user_id)
    session.add(deployment)
    session.flush()
    job = job_service.create_job(session, "deployment.build", params={"deployment_id": deployment.id,
                                                                    "activate": activate},
                                 project_id=checkpoint.project_id, user_id=user_id)
    deployment.job_id = job.id
    send_after_commit(celery, runtime, session, [job])
    session.flush()
    return deployment


def activate(runtime, session, deployment: Deployment) -> Deployment:
    """Make `deployment` (ready) the active one of its project and task; the previous one stops being. In the
    caller's transaction; inference workers learn it (Redis) once that commits."""
    now = utcnow()
    session.execute(update(Deployment).where(Deployment.project_id == deployment.project_id,
                                             Deployment.task == deployment.task, Deployment.active.is_(True),
                                             Deployment.id != deployment.id).values(active=False))
    session.execute(update(Deployment).where(Deployment.id == deployment.id, Deployment.status == DeploymentStatus.ready)
                    .values(active=True, activated_at=now))
    session.refresh(deployment)
    project_id, task = deployment.project_id, deployment.task.value

    def publish() -> None:
        with runtime.sessions() as fresh:
            publish_active(runtime, fresh, project_id, task)

    after_commit(session, publish)
    return deployment


def active_deployment(session, project_id: int, task: str) -> Deployment | None:
    return session.scalar(select(Deployment).where(Deployment.project_id == project_id,
                                                   Deployment.task == DeploymentTask(task),
                                                   Deployment.active.is_(True)).order_by(Deployment.id.desc()))


def publish_active(runtime, session, project_id: int, task: str) -> int | None:
    """Write the catalog's active deployment id into Redis (or remove the key when there is none)."""
    current = active_deployment(session, project_id, task)
    key = runtime.keys.active_deployment(project_id, task)
    if current is None:
        runtime.redis.delete(key)
        return None
    runtime.redis.set(key, current.id)
    return current.id
