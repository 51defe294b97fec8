"""The model tree: architectures, roots (fresh or uploaded), forks, training runs, lineage, weights.

The rules of the tree (roots, uploads, forks, what may train on what) are commands in
`services/checkpoints.py`; these views parse, call one, and serialise. The API never imports TensorFlow.
"""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from sqlalchemy import select

from api.auth import current_user, require_role
from api.blueprint import Blueprint, Extended, in_project, page, referenced
from api.errors import ApiError, load_input
from api.extensions import celery, db, runtime
from api.files import download_doc, send_blob
from api.model_schemas import (
    ArchitectureList, CheckpointIn, CheckpointOut, CheckpointPage, CheckpointQuery, CheckpointTree, CheckpointUpload,
    CheckpointUploadForm, ForkIn, TrainIn,
)
from api.uploads import uploaded_files
from models.architectures import ARCHITECTURES
from services import checkpoints as commands
from services.checkpoints import lineage
from store.schema import Checkpoint, LabelMap, LabelMapEntry, Role

bp = Blueprint("checkpoints", __name__, url_prefix="/api", description="Architectures and the checkpoint tree")
PROJECT = "/projects/<int:project_id>/checkpoints"


@bp.route("/architectures")
class Architectures(MethodView):
    @bp.response(200, ArchitectureList)
    def get(self):
        """Model architectures: inputs, named outputs, preprocessing spec, the dataset handlers they train on."""
        return {"items": [a.describe() for a in ARCHITECTURES.values()]}


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
        label_map = referenced(LabelMap, data["label_map_id"], project_id, "label map", "label_map_id")
        return with_lineage(commands.new_root(db.session, project_id, data["architecture"], label_map, name=data["name"],
                                              input_size=data.get("input_size"), seed=data["seed"],
                                              user_id=current_user().id))


def _upload_root(project_id: int) -> Extended:
    form = load_input(CheckpointUploadForm(), request.form.to_dict())
    files = uploaded_files("file", what="the .keras file", form=True)
    if len(files) != 1:
        raise ApiError(400, "send exactly one .keras file as 'file'", fields={"file": ["exactly one file"]})
    label_map = referenced(LabelMap, form["label_map_id"], project_id, "label map", "label_map_id")
    checkpoint = commands.upload_root(db.session, runtime().blobs, project_id, form["architecture"], label_map,
                                      name=form["name"], stream=files[0].stream, file_name=files[0].filename,
                                      user_id=current_user().id)
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
        return with_lineage(commands.fork(db.session, parent, (data or {}).get("name"), current_user().id))


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
        job = commands.train(celery(), runtime(), db.session, checkpoint, data, current_user().id)
        return with_lineage(checkpoint, job=job)


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
