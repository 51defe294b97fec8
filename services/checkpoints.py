"""The checkpoint tree as the API and the training job share it: lineage, preprocessing, starting a training
run. A run that ends without finishing is settled by its job's end (`services.settle`).

Nothing here imports TensorFlow: the API uses it. The tree's rules: a root comes from an architecture
(weights = its deterministic initialisation with a seed) or an uploaded `.keras` file; a fork starts from
its parent's weights; only a `fresh` (or `failed`) checkpoint can be trained, in place, once; a trained
checkpoint never changes again (fork it to train further).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from models.architectures import Architecture, UnknownArchitecture, get_architecture
from models.keras_file import InvalidModelFile, check_keras_file
from services.errors import CommandError
from store.schema import Checkpoint, CheckpointStatus, Dataset, DatasetStatus, Job, LabelMap, User
from services import jobs as job_service
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
                   user_id: int | None, job_id: str | None = None) -> Job:
    """Mark the checkpoint `training` on `dataset` and enqueue its job (after the caller commits). The caller has
    checked the checkpoint is trainable and the dataset fits it; `params` are validated."""
    classes = list(dataset.manifest["label_map"]["classes"])
    job = job_service.create_job(session, "checkpoint.train", params={"checkpoint_id": checkpoint.id},
                                 project_id=checkpoint.project_id, user_id=user_id, job_id=job_id)
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


@dataclass
class TrainedOn:
    """The dataset a checkpoint was trained on: its key, and its row while the cache still holds it."""

    key: str
    dataset: Dataset | None


@dataclass
class Lineage:
    """Where a checkpoint comes from, as rows (the API's `LineageOut` dumps them)."""

    ancestors: list[Checkpoint]  # root first, the parent last
    children: list[int]
    dataset: TrainedOn | None
    label_map: LabelMap | None
    created_by: User | None


def lineage(session, c: Checkpoint) -> Lineage:
    """Where `c` comes from: ancestors, children, the dataset and label map it was trained on, its maker."""
    dataset = session.scalar(select(Dataset).where(Dataset.key == c.dataset_key)) if c.dataset_key else None
    return Lineage(
        ancestors=ancestors(session, c),
        children=list(session.scalars(select(Checkpoint.id).where(Checkpoint.parent_id == c.id)
                                      .order_by(Checkpoint.id))),
        dataset=TrainedOn(c.dataset_key, dataset) if c.dataset_key else None,
        label_map=session.get(LabelMap, c.label_map_id) if c.label_map_id else None,
        created_by=session.get(User, c.created_by) if c.created_by else None,
    )


# --- commands: roots, uploads, forks, training runs ----------------------------------------------------


def architecture_named(name: str) -> Architecture:
    try:
        return get_architecture(name)
    except UnknownArchitecture as exc:
        raise CommandError(400, str(exc), fields={"architecture": [f"available: {', '.join(exc.available)}"]}) from None


def label_map_classes(label_map: LabelMap) -> list[str]:
    """The class names a head sized by this label map predicts, in its order."""
    if not label_map.entries:
        raise CommandError(400, f"label map {label_map.id} has no classes", fields={"label_map_id": ["has no classes"]})
    return [e.label_class.name for e in label_map.entries]


def new_root(session, project_id: int, architecture_name: str, label_map: LabelMap, *, name: str,
             input_size: int | None, seed: int, user_id: int) -> Checkpoint:
    """A root whose weights are the architecture's deterministic initialisation with `seed` (no file)."""
    architecture = architecture_named(architecture_name)
    size = input_size or architecture.default_size
    if (why := architecture.check_size(size)) is not None:
        raise CommandError(400, f"input_size {size} {why}", fields={"input_size": [why]})
    checkpoint = Checkpoint(
        project_id=project_id, name=name, architecture=architecture.name, status=CheckpointStatus.fresh,
        label_map_id=label_map.id, classes=label_map_classes(label_map), weights_key=None,
        config={"source": "architecture", "input_size": size, "seed": seed}, state={}, params={}, metrics={},
        curve=[], created_by=user_id)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def upload_root(session, blobs, project_id: int, architecture_name: str, label_map: LabelMap, *, name: str,
                stream, file_name: str | None, user_id: int) -> Checkpoint:
    """A root from an uploaded `.keras` file, checked against the architecture and the label map before it is
    stored (structurally: no TensorFlow here)."""
    architecture = architecture_named(architecture_name)
    classes = label_map_classes(label_map)
    try:
        info = check_keras_file(stream, architecture, len(classes))
    except InvalidModelFile as exc:
        raise CommandError(400, f"{file_name or 'the file'}: {exc}", code="invalid_model",
                           fields={"file": [str(exc)]}) from None
    stream.seek(0)
    key, size = blobs.put_stream(stream)
    checkpoint = Checkpoint(
        project_id=project_id, name=name or (file_name or ""), architecture=architecture.name,
        status=CheckpointStatus.fresh, label_map_id=label_map.id, classes=classes, weights_key=key,
        config={"source": "upload", "input_size": info.size, "seed": 0, "file_name": file_name, "file_bytes": size,
                "keras_version": info.keras_version},
        state={}, params={}, metrics={}, curve=[], created_by=user_id)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def fork(session, parent: Checkpoint, name: str | None, user_id: int) -> Checkpoint:
    """A child that starts from its parent's (final) weights, ready to train."""
    if parent.status in (CheckpointStatus.training, CheckpointStatus.failed):
        raise CommandError(409, f"checkpoint {parent.id} is {parent.status.value}; fork a checkpoint whose weights "
                                "are final (fresh, trained or cancelled)")
    child = Checkpoint(
        project_id=parent.project_id, parent_id=parent.id, name=name or f"{parent.name or parent.id} fork",
        architecture=parent.architecture, status=CheckpointStatus.fresh, label_map_id=parent.label_map_id,
        classes=list(parent.classes), weights_key=parent.weights_key, config={**parent.config, "source": "fork"},
        state={}, params={}, metrics={}, curve=[], created_by=user_id)
    session.add(child)
    session.flush()
    return child


def train(celery, runtime, session, checkpoint: Checkpoint, request: dict, user_id: int,
          job_id: str | None = None) -> Job:
    """Start a training run of `checkpoint` on the cached dataset `request["dataset_key"]` with the rest of
    `request` as its parameters. Only a fresh (or failed) checkpoint trains; the dataset must be ready, come
    from a handler the architecture trains on, and list the checkpoint's classes unless `reinit_head`."""
    if checkpoint.status not in TRAINABLE:
        hint = {CheckpointStatus.training: f"it is training in job {checkpoint.job_id}",
                CheckpointStatus.trained: "trained checkpoints are immutable; fork it and train the fork",
                CheckpointStatus.cancelled: "fork it to go on from its last finished epoch"}[checkpoint.status]
        raise CommandError(409, f"checkpoint {checkpoint.id} is {checkpoint.status.value}: {hint}",
                           code="not_trainable")
    dataset = _dataset_for(session, checkpoint, request)
    params = {k: v for k, v in request.items() if k != "dataset_key"}
    return start_training(celery, runtime, session, checkpoint, dataset, params, user_id, job_id)


def _dataset_for(session, checkpoint: Checkpoint, data: dict) -> Dataset:
    key = data["dataset_key"]
    dataset = session.scalar(select(Dataset).where(Dataset.key == key))
    if dataset is None or dataset.project_id != checkpoint.project_id:
        raise CommandError(400, f"dataset {key} not found in project {checkpoint.project_id}",
                           fields={"dataset_key": ["no such dataset in this project (request it with POST /api/datasets)"]})
    if dataset.status is not DatasetStatus.ready:
        raise CommandError(409, f"dataset {key} is {dataset.status.value}, not ready"
                           + (f": {dataset.error}" if dataset.error else f"; wait for job {dataset.job_id}"),
                           fields={"dataset_key": [f"{dataset.status.value}, not ready"]})
    architecture = get_architecture(checkpoint.architecture)
    if dataset.handler not in architecture.handlers:
        wanted = ", ".join(f"{h}@" for h in architecture.handlers)
        raise CommandError(400, f"dataset {key[:12]}… was built by {dataset.handler}@{dataset.handler_version}; "
                                f"{architecture.name} trains on {wanted} datasets", code="incompatible_dataset",
                           fields={"dataset_key": [f"built by {dataset.handler}@{dataset.handler_version}, needs {wanted}"]})
    records = dataset.manifest.get("records", {})
    if not records.get("train"):
        raise CommandError(400, f"dataset {key[:12]}… has no training records", fields={"dataset_key": ["empty train split"]})
    if data.get("early_stopping") and not records.get("validation"):
        raise CommandError(400, f"early stopping watches val_loss, and dataset {key[:12]}… has no validation records",
                           fields={"early_stopping": ["needs a validation split"]})
    classes = list(dataset.manifest["label_map"]["classes"])
    if classes != list(checkpoint.classes) and not data["reinit_head"]:
        raise CommandError(409, f"the dataset's label map has classes {classes}; checkpoint {checkpoint.id} predicts "
                                f"{list(checkpoint.classes)}. Train with reinit_head: true to replace the class head",
                           code="label_map_mismatch", fields={"reinit_head": ["required: the label maps differ"]})
    return dataset
