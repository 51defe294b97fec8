"""Retry: a new job with the same request as one that ended.

A job's params name the resource it works on (a dataset, a checkpoint, a deployment), and its resource
says what the request was, so a retry goes through that resource's own command with the same rules as
the first request: a dataset is asked for again by its definition (with today's data: a stale copy is
never rebuilt under an old key), a checkpoint trains again on the same dataset with the same
parameters, a checkpoint is deployed again. A probe is simply sent again. An ingest cannot be: its
files are deleted when it ends.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from handlers.registry import UnknownHandler, default_registry
from services import checkpoints, datasets, deployments
from services import jobs as job_service
from services.errors import CommandError
from services.queues import Queue
from store.schema import Checkpoint, Dataset, Deployment, Job, JobStatus, LabelMap

ENDED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


def retry(celery, runtime, session: Session, job: Job, user_id: int) -> Job:
    """The new job (queued once the caller commits), or a CommandError saying why there is none."""
    if job.status not in ENDED:
        raise CommandError(409, f"job {job.id} is {job.status.value}: only a job that ended can be retried "
                                "(cancel it first)", code="not_ended")
    retry_kind = _BY_KIND.get(job.kind)
    if retry_kind is None:
        raise CommandError(409, f"a {job.kind} job cannot be retried", code="not_retryable")
    return retry_kind(celery, runtime, session, job, user_id)


def _probe(celery, runtime, session, job: Job, user_id: int) -> Job:
    return job_service.submit(celery, runtime, session, job.kind, params=dict(job.params or {}), queue=Queue(job.queue),
                              project_id=job.project_id, user_id=user_id)


def _ingest(*_args) -> Job:
    raise CommandError(409, "an ingest's files are deleted when it ends: upload them again", code="not_retryable")


def _resource(session, model, job: Job, param: str, what: str):
    row = session.get(model, (job.params or {}).get(param))
    if row is None:
        raise CommandError(409, f"the {what} job {job.id} worked on is gone: nothing to retry", code="gone")
    return row


def _dataset(celery, runtime, session, job: Job, user_id: int) -> Job:
    dataset = _resource(session, Dataset, job, "dataset_id", "dataset")
    label_map = session.get(LabelMap, dataset.label_map_id) if dataset.label_map_id else None
    try:
        handler = default_registry().get(f"{dataset.handler}@{dataset.handler_version}")
    except UnknownHandler:
        handler = None
    if label_map is None or handler is None:
        raise CommandError(409, f"dataset {dataset.key[:12]}…'s label map or handler is gone: request a new one",
                           code="gone")
    definition = datasets.define(session, project_id=dataset.project_id, name=dataset.name, handler=handler,
                                 config=dataset.config, label_map=label_map, subset=dataset.subset)
    answer = datasets.request_dataset(celery, runtime, session, definition, user_id)
    if answer.job is None:
        raise CommandError(409, f"dataset {answer.dataset.key[:12]}… is ready (cached): nothing to build",
                           code="already_ready")
    return answer.job


def _training(celery, runtime, session, job: Job, user_id: int) -> Job:
    checkpoint = _resource(session, Checkpoint, job, "checkpoint_id", "checkpoint")
    if checkpoint.job_id != job.id:
        raise CommandError(409, f"checkpoint {checkpoint.id} has trained since, in job {checkpoint.job_id}: "
                                "retry that one", code="superseded")
    request = {"dataset_key": checkpoint.dataset_key, "reinit_head": False, **(checkpoint.params or {})}
    return checkpoints.train(celery, runtime, session, checkpoint, request, user_id)


def _deployment(celery, runtime, session, job: Job, user_id: int) -> Job:
    deployment = _resource(session, Deployment, job, "deployment_id", "deployment")
    checkpoint = session.get(Checkpoint, deployment.checkpoint_id)
    try:
        again = deployments.request_deployment(celery, runtime, session, checkpoint,
                                               activate=bool((job.params or {}).get("activate")), user_id=user_id)
    except deployments.DeployError as exc:
        raise CommandError(409, str(exc), code="not_deployable") from None
    return session.get(Job, again.job_id)


_BY_KIND = {"probe": _probe, "ingest": _ingest, "dataset.build": _dataset, "checkpoint.train": _training,
            "deployment.build": _deployment}
