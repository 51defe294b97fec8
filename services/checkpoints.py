"""The checkpoint tree as the API and the training job share it: lineage, preprocessing, starting a training
run. A run that ends without finishing is settled by its job's end (`services.settle`).

Nothing here imports TensorFlow: the API uses it. The tree's rules: a root comes from an architecture
(weights = its deterministic initialisation with a seed) or an uploaded `.keras` file; a fork starts from
its parent's weights; only a `fresh` (or `failed`) checkpoint can be trained, in place, once; a trained
checkpoint never changes again (fork it to train further).
"""

from __future__ import annotations

from sqlalchemy import select, update

from models.architectures import get_architecture
from store.schema import Checkpoint, CheckpointStatus, Dataset, Job, LabelMap, User
from services import jobs as job_service
from services.datasets import handler_ref
from services.outbox import send_after_commit

TRAINABLE = (CheckpointStatus.fresh, CheckpointStatus.failed)


def ancestors(session, checkpoint: Checkpoint) -> list[Checkpoint]:
    """Root first, the checkpoint's parent last."""
    chain, seen = [], {checkpoint.id}
    parent_id = checkpoint.parent_id
    while parent_id is not None and parent_id not in seen:
        parent = session.get(Checkpoint, parent_id)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_id
    return chain[::-1]


def start_training(celery, runtime, session, checkpoint: Checkpoint, dataset: Dataset, params: dict,
                   user_id: int | None) -> Job:
    """Mark the checkpoint `training` on `dataset` and enqueue its job (after the caller commits). The caller has
    checked the checkpoint is trainable and the dataset fits it; `params` are validated."""
    classes = list(dataset.manifest["label_map"]["classes"])
    job = job_service.create_job(session, "checkpoint.train", params={"checkpoint_id": checkpoint.id},
                                 project_id=checkpoint.project_id, user_id=user_id)
    done = session.execute(
        update(Checkpoint)
        .where(Checkpoint.id == checkpoint.id, Checkpoint.status.in_(TRAINABLE))
        .values(status=CheckpointStatus.training, job_id=job.id, dataset_id=dataset.id, dataset_key=dataset.key,
                label_map_id=dataset.label_map_id, classes=classes, params=params, state={}, metrics={}, curve=[])
    ).rowcount
    if not done:
        raise RuntimeError(f"checkpoint {checkpoint.id} started training in another request")
    send_after_commit(celery, runtime, session, [job])
    session.flush()
    session.refresh(checkpoint)
    return job


def preprocessing(c: Checkpoint) -> dict:
    """The preprocessing spec of `c`'s inputs: its architecture's, at its input size."""
    architecture = get_architecture(c.architecture)
    return architecture.spec(c.config.get("input_size", architecture.default_size)).to_dict()


def lineage(session, c: Checkpoint) -> dict:
    """Where `c` comes from: ancestors, children, the dataset and label map it was trained on, its maker."""
    dataset = session.scalar(select(Dataset).where(Dataset.key == c.dataset_key)) if c.dataset_key else None
    label_map = session.get(LabelMap, c.label_map_id) if c.label_map_id else None
    creator = session.get(User, c.created_by) if c.created_by else None
    children = session.scalars(select(Checkpoint.id).where(Checkpoint.parent_id == c.id).order_by(Checkpoint.id)).all()
    return {
        "ancestors": [{"id": a.id, "name": a.name, "status": a.status.value, "dataset_key": a.dataset_key}
                      for a in ancestors(session, c)],
        "children": list(children),
        "dataset": None if not c.dataset_key else {
            "key": c.dataset_key, "cached": dataset is not None,
            **({"name": dataset.name, "handler": handler_ref(dataset),
                "config": dataset.config, "data_revision": dataset.data_revision, "subset": dataset.subset,
                "records": dataset.manifest.get("records")} if dataset is not None else {}),
        },
        "label_map": None if label_map is None else {
            "id": label_map.id, "name": label_map.name,
            "classes": [{"id": e.label_class.id, "name": e.label_class.name, "group": e.label_class.group}
                        for e in label_map.entries]},
        "created_by": None if creator is None else {"id": creator.id, "name": creator.name},
    }
