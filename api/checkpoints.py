"""The model tree: architectures, roots (fresh or uploaded), forks, training runs, lineage, weights.

The API never imports TensorFlow: architectures are a plain table (`models.architectures`) and uploaded
`.keras` files are checked structurally (`models.keras_file`); the training pool loads them for real.
"""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from sqlalchemy import select

from api.auth import current_user, require_role
from api.blueprint import Blueprint, Extended, in_project, page
from api.errors import ApiError, load_input
from api.extensions import celery, db, runtime
from api.files import download_doc, send_blob
from api.labels import get_label_map
from api.model_schemas import (
    ArchitectureList, CheckpointIn, CheckpointOut, CheckpointPage, CheckpointQuery, CheckpointTree, CheckpointUpload,
    CheckpointUploadForm, ForkIn, TrainIn,
)
from api.uploads import uploaded_files
from models.architectures import ARCHITECTURES, Architecture, UnknownArchitecture, get_architecture
from models.keras_file import InvalidModelFile, check_keras_file
from store.schema import Checkpoint, CheckpointStatus, Dataset, DatasetStatus, LabelMap, LabelMapEntry, Role
from services.checkpoints import TRAINABLE, lineage, start_training

bp = Blueprint("checkpoints", __name__, url_prefix="/api", description="Architectures and the checkpoint tree")
PROJECT = "/projects/<int:project_id>/checkpoints"


@bp.route("/architectures")
class Architectures(MethodView):
    @bp.response(200, ArchitectureList)
    def get(self):
        """Model architectures: inputs, named outputs, preprocessing spec, the dataset handlers they train on."""
        return {"items": [a.describe() for a in ARCHITECTURES.values()]}


def _architecture(name: str) -> Architecture:
    try:
        return get_architecture(name)
    except UnknownArchitecture as exc:
        raise ApiError(400, str(exc), fields={"architecture": [f"available: {', '.join(exc.available)}"]}) from None


def _classes(label_map: LabelMap) -> list[str]:
    if not label_map.entries:
        raise ApiError(400, f"label map {label_map.id} has no classes", fields={"label_map_id": ["has no classes"]})
    return [e.label_class.name for e in label_map.entries]


def get_checkpoint(project_id: int, checkpoint_id: int) -> Checkpoint:
    return in_project(Checkpoint, checkpoint_id, project_id, "checkpoint")


def with_lineage(checkpoint: Checkpoint, **extra) -> Extended:
    """The checkpoint as one checkpoint's answers show it: with its lineage (and what else `extra` adds)."""
    return Extended(checkpoint, lineage=lineage(db.session, checkpoint), **extra)


@bp.route(PROJECT)
class Checkpoints(MethodView):
    @bp.arguments(CheckpointQuery, location="query")
    @bp.response(200, CheckpointPage)
    def get(self, args, project_id):
        """The project's checkpoints, oldest first; filter by status, architecture, the dataset they were
        trained on, parent, or a class their label map holds (class → checkpoints lineage)."""
        require_role(project_id)
        q = select(Checkpoint).where(Checkpoint.project_id == project_id)
        for key in ("status", "architecture", "dataset_key", "parent_id"):
            if key in args:
                q = q.where(getattr(Checkpoint, key) == args[key])
        if "class_id" in args:
            maps = select(LabelMapEntry.label_map_id).where(LabelMapEntry.class_id == args["class_id"])
            q = q.where(Checkpoint.label_map_id.in_(maps))
        return page(q.order_by(Checkpoint.id), args)

    @bp.response(201, CheckpointOut)
    @bp.doc(requestBody={"required": True, "content": {
        "application/json": {"schema": CheckpointIn},
        "multipart/form-data": {"schema": CheckpointUpload},
    }})
    def post(self, project_id):
        """Make a root: JSON names an architecture (fresh weights from `seed`); multipart/form-data with a
        `.keras` `file` uploads weights, checked against the architecture and the label map (400 says why)."""
        require_role(project_id, Role.annotator)
        if request.mimetype == "multipart/form-data":
            return _upload_root(project_id)
        if not request.is_json:
            raise ApiError(415, "send JSON with architecture and label_map_id, or multipart/form-data with a file")
        data = load_input(CheckpointIn(), request.get_json(silent=True) or {})
        architecture = _architecture(data["architecture"])
        size = data.get("input_size", architecture.default_size)
        if (why := architecture.check_size(size)) is not None:
            raise ApiError(400, f"input_size {size} {why}", fields={"input_size": [why]})
        label_map = get_label_map(project_id, data["label_map_id"])
        checkpoint = Checkpoint(
            project_id=project_id, name=data["name"], architecture=architecture.name, status=CheckpointStatus.fresh,
            label_map_id=label_map.id, classes=_classes(label_map), weights_key=None,
            config={"source": "architecture", "input_size": size, "seed": data["seed"]}, state={}, params={},
            metrics={}, curve=[], created_by=current_user().id)
        db.session.add(checkpoint)
        db.session.flush()
        return with_lineage(checkpoint)


def _upload_root(project_id: int) -> Extended:
    form = load_input(CheckpointUploadForm(), request.form.to_dict())
    files = uploaded_files("file", what="the .keras file", form=True)
    if len(files) != 1:
        raise ApiError(400, "send exactly one .keras file as 'file'", fields={"file": ["exactly one file"]})
    architecture = _architecture(form["architecture"])
    label_map = get_label_map(project_id, form["label_map_id"])
    classes = _classes(label_map)
    stream = files[0].stream
    try:
        info = check_keras_file(stream, architecture, len(classes))
    except InvalidModelFile as exc:
        raise ApiError(400, f"{files[0].filename or 'the file'}: {exc}", code="invalid_model",
                       fields={"file": [str(exc)]}) from None
    stream.seek(0)
    key, size = runtime().blobs.put_stream(stream)
    checkpoint = Checkpoint(
        project_id=project_id, name=form["name"] or (files[0].filename or ""), architecture=architecture.name,
        status=CheckpointStatus.fresh, label_map_id=label_map.id, classes=classes, weights_key=key,
        config={"source": "upload", "input_size": info.size, "seed": 0, "file_name": files[0].filename,
                "file_bytes": size, "keras_version": info.keras_version},
        state={}, params={}, metrics={}, curve=[], created_by=current_user().id)
    db.session.add(checkpoint)
    db.session.flush()
    return with_lineage(checkpoint)


@bp.route(f"{PROJECT}/tree")
class Tree(MethodView):
    @bp.response(200, CheckpointTree)
    def get(self, project_id):
        """Every checkpoint of the project as a forest: roots, each node with its `children`."""
        require_role(project_id)
        nodes = {c.id: Extended(c, children=[])
                 for c in db.session.scalars(select(Checkpoint).where(Checkpoint.project_id == project_id)
                                             .order_by(Checkpoint.id))}
        roots = []
        for node in nodes.values():
            parent = nodes.get(node.parent_id)
            (parent.children if parent else roots).append(node)
        return {"roots": roots}


@bp.route(f"{PROJECT}/<int:checkpoint_id>")
class CheckpointItem(MethodView):
    @bp.response(200, CheckpointOut)
    def get(self, project_id, checkpoint_id):
        """One checkpoint with its lineage: ancestors, children, the dataset and label map (with classes) it
        was trained on, who made it; and its metrics and training curve."""
        require_role(project_id)
        return with_lineage(get_checkpoint(project_id, checkpoint_id))


@bp.route(f"{PROJECT}/<int:checkpoint_id>/fork")
class Fork(MethodView):
    @bp.arguments(ForkIn, location="json", required=False)
    @bp.response(201, CheckpointOut)
    def post(self, data, project_id, checkpoint_id):
        """A child that starts from this checkpoint's weights, ready to train."""
        require_role(project_id, Role.annotator)
        parent = get_checkpoint(project_id, checkpoint_id)
        if parent.status in (CheckpointStatus.training, CheckpointStatus.failed):
            raise ApiError(409, f"checkpoint {parent.id} is {parent.status.value}; fork a checkpoint whose weights are "
                                "final (fresh, trained or cancelled)")
        child = Checkpoint(
            project_id=project_id, parent_id=parent.id, name=(data or {}).get("name") or f"{parent.name or parent.id} fork",
            architecture=parent.architecture, status=CheckpointStatus.fresh, label_map_id=parent.label_map_id,
            classes=list(parent.classes), weights_key=parent.weights_key,
            config={**parent.config, "source": "fork"}, state={}, params={}, metrics={}, curve=[],
            created_by=current_user().id)
        db.session.add(child)
        db.session.flush()
        return with_lineage(child)


@bp.route(f"{PROJECT}/<int:checkpoint_id>/train")
class Train(MethodView):
    @bp.arguments(TrainIn)
    @bp.response(202, CheckpointOut)
    def post(self, data, project_id, checkpoint_id):
        """Train this checkpoint on a cached dataset (202 with the job). Only a fresh (or failed) checkpoint
        trains; a trained one is immutable: fork it. The dataset must come from a handler the architecture
        trains on, and its label map must list the checkpoint's classes unless `reinit_head` is true."""
        require_role(project_id, Role.annotator)
        checkpoint = get_checkpoint(project_id, checkpoint_id)
        if checkpoint.status not in TRAINABLE:
            hint = {CheckpointStatus.training: f"it is training in job {checkpoint.job_id}",
                    CheckpointStatus.trained: "trained checkpoints are immutable; fork it and train the fork",
                    CheckpointStatus.cancelled: "fork it to go on from its last finished epoch"}[checkpoint.status]
            raise ApiError(409, f"checkpoint {checkpoint.id} is {checkpoint.status.value}: {hint}",
                           code="not_trainable")
        dataset = _dataset_for(checkpoint, data)
        params = {k: v for k, v in data.items() if k != "dataset_key"}
        job = start_training(celery(), runtime(), db.session, checkpoint, dataset, params, current_user().id)
        return with_lineage(checkpoint, job=job)


def _dataset_for(checkpoint: Checkpoint, data: dict) -> Dataset:
    key = data["dataset_key"]
    dataset = db.session.scalar(select(Dataset).where(Dataset.key == key))
    if dataset is None or dataset.project_id != checkpoint.project_id:
        raise ApiError(404, f"dataset {key} not found in project {checkpoint.project_id}",
                       fields={"dataset_key": ["no such dataset in this project (request it with POST /api/datasets)"]})
    if dataset.status is not DatasetStatus.ready:
        raise ApiError(409, f"dataset {key} is {dataset.status.value}, not ready"
                       + (f": {dataset.error}" if dataset.error else f"; wait for job {dataset.job_id}"),
                       fields={"dataset_key": [f"{dataset.status.value}, not ready"]})
    architecture = get_architecture(checkpoint.architecture)
    if dataset.handler not in architecture.handlers:
        wanted = ", ".join(f"{h}@" for h in architecture.handlers)
        raise ApiError(400, f"dataset {key[:12]}… was built by {dataset.handler}@{dataset.handler_version}; "
                            f"{architecture.name} trains on {wanted} datasets", code="incompatible_dataset",
                       fields={"dataset_key": [f"built by {dataset.handler}@{dataset.handler_version}, needs {wanted}"]})
    records = dataset.manifest.get("records", {})
    if not records.get("train"):
        raise ApiError(400, f"dataset {key[:12]}… has no training records", fields={"dataset_key": ["empty train split"]})
    if data.get("early_stopping") and not records.get("validation"):
        raise ApiError(400, f"early stopping watches val_loss, and dataset {key[:12]}… has no validation records",
                       fields={"early_stopping": ["needs a validation split"]})
    classes = list(dataset.manifest["label_map"]["classes"])
    if classes != list(checkpoint.classes) and not data["reinit_head"]:
        raise ApiError(409, f"the dataset's label map has classes {classes}; checkpoint {checkpoint.id} predicts "
                            f"{list(checkpoint.classes)}. Train with reinit_head: true to replace the class head",
                       code="label_map_mismatch", fields={"reinit_head": ["required: the label maps differ"]})
    return dataset


@bp.route(f"{PROJECT}/<int:checkpoint_id>/weights")
class Weights(MethodView):
    @bp.doc(**download_doc("application/octet-stream", description="the `.keras` file"))
    def get(self, project_id, checkpoint_id):
        """The checkpoint's `.keras` file (weights with graph; loads with keras.models.load_model)."""
        require_role(project_id)
        checkpoint = get_checkpoint(project_id, checkpoint_id)
        if checkpoint.weights_key is None:
            raise ApiError(409, f"checkpoint {checkpoint.id} has no weights file: its weights are the "
                                f"{checkpoint.architecture} initialisation with seed {checkpoint.config.get('seed')}; "
                                "train it or a fork of it")
        return send_blob(checkpoint.weights_key, mimetype="application/octet-stream",
                         name=f"checkpoint-{checkpoint.id}.keras", etag=checkpoint.weights_key,
                         cache_control="private, max-age=31536000, immutable",
                         gone=f"the weights file of checkpoint {checkpoint.id} is missing")
