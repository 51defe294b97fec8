"""Datasets: request one by definition (200 cached / 202 building), list, inspect, delete, download.
Also the handler registry (`GET /api/handlers`)."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from sqlalchemy import func, select, update

from api.auth import current_user, member_project_ids, require_role
from api.blueprint import Blueprint, page, referenced
from api.data_schemas import DatasetCacheOut, DatasetIn, DatasetOut, DatasetPage, DatasetQuery, DatasetRequested, HandlerList
from api.errors import ApiError
from api.extensions import celery, db, runtime
from api.files import download_doc, send_blob
from handlers.registry import ConfigError, UnknownHandler, default_registry
from store.schema import Checkpoint, Dataset, DatasetStatus, LabelMap, Role
from store.schema.base import utcnow
from services.datasets import define, in_training, request_dataset

bp = Blueprint("datasets", __name__, url_prefix="/api", description="Datasets built by handlers, and their cache")


@bp.route("/handlers")
class Handlers(MethodView):
    @bp.response(200, HandlerList)
    def get(self):
        """Every registered handler (built in or installed as a package), with its options."""
        return {"items": [h.describe() for h in default_registry().all()]}


def visible_dataset(key: str, need: Role = Role.viewer) -> Dataset:
    dataset = db.session.scalar(select(Dataset).where(Dataset.key == key))
    if dataset is None:
        raise ApiError(404, f"dataset {key} not found")
    try:
        require_role(dataset.project_id, need)
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(404, f"dataset {key} not found") from None
        raise
    return dataset


@bp.route("/datasets")
class Datasets(MethodView):
    @bp.arguments(DatasetQuery, location="query")
    @bp.response(200, DatasetPage)
    def get(self, args):
        """Datasets of the projects you belong to, most recently used first."""
        user = current_user()
        q = select(Dataset)
        if not user.is_superuser:
            q = q.where(Dataset.project_id.in_(member_project_ids(user)))
        if "project_id" in args:
            require_role(args["project_id"])
            q = q.where(Dataset.project_id == args["project_id"])
        for key in ("status", "name"):
            if key in args:
                q = q.where(getattr(Dataset, key) == args[key])
        return page(q.order_by(Dataset.last_access_at.desc(), Dataset.id.desc()), args)

    @bp.arguments(DatasetIn)
    @bp.response(200, DatasetRequested)
    @bp.alt_response(202, schema=DatasetRequested, description="not built yet: the build job to wait for")
    def post(self, data):
        """Ask for a dataset by definition. 200 with the dataset when it is cached; otherwise 202 with the
        one build job that every identical request shares."""
        require_role(data["project_id"], Role.annotator)
        try:
            handler = default_registry().get(data["handler"])
        except UnknownHandler as exc:
            raise ApiError(400, str(exc), fields={"handler": [f"available: {', '.join(exc.available)}"]}) from None
        label_map = referenced(LabelMap, data["label_map_id"], data["project_id"], "label map", "label_map_id")
        try:
            definition = define(db.session, project_id=data["project_id"], name=data["name"], handler=handler,
                                config=data["config"], label_map=label_map, subset=data["subset"])
        except ConfigError as exc:
            fields = {f"config.{k}": [v] for k, v in exc.errors.items()}
            raise ApiError(400, "invalid config: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items()),
                           code="invalid_config", fields=fields) from None
        if not definition.images:
            what = "failed cases with" if data["subset"] == "failed" else "images with"
            raise ApiError(400, f"label map {label_map.id} selects nothing: there are no {what} accepted boxes of "
                                "its classes yet", fields={"label_map_id": ["selects no images"]})
        answer = request_dataset(celery(), runtime(), db.session, definition, current_user().id)
        body = {"dataset": answer.dataset, "cached": answer.hit, "job": answer.job}
        return body, (200 if answer.hit else 202)


@bp.route("/dataset-cache")
class DatasetCache(MethodView):
    @bp.response(200, DatasetCacheOut)
    def get(self):
        """How much of the dataset cache's quota the built datasets use (all projects: the quota is shared;
        the least recently used are evicted past it)."""
        used, count = db.session.execute(
            select(func.coalesce(func.sum(Dataset.size_bytes), 0), func.count())
            .where(Dataset.status == DatasetStatus.ready)).one()
        return {"used_bytes": int(used), "quota_bytes": current_app.config["LOOPLINE"].dataset_cache_bytes,
                "datasets": int(count)}


@bp.route("/datasets/<string:key>")
class DatasetItem(MethodView):
    @bp.response(200, DatasetOut)
    def get(self, key):
        return visible_dataset(key)

    @bp.response(204)
    def delete(self, key):
        """Remove a built dataset from the cache (the next request builds it again). The zip is left to
        the blob collector, which deletes it once no row names it."""
        dataset = visible_dataset(key, Role.admin)
        if dataset.status is DatasetStatus.building:
            raise ApiError(409, f"dataset {key} is being built by job {dataset.job_id}; cancel the job first")
        if db.session.scalar(in_training().where(Checkpoint.dataset_id == dataset.id).limit(1)):
            raise ApiError(409, f"dataset {key} is being trained on; wait for the training job or cancel it")
        db.session.delete(dataset)
        db.session.flush()


@bp.route("/datasets/<string:key>/archive")
class DatasetArchive(MethodView):
    @bp.doc(**download_doc("application/zip", description="the dataset's zip"))
    def get(self, key):
        """The zip (TFRecord shards, label_map.pbtxt, manifest.json). ETag is its SHA-256 (also in
        `X-Checksum-SHA256`); `Range` resumes an interrupted download."""
        dataset = visible_dataset(key)
        if dataset.status is not DatasetStatus.ready:
            raise ApiError(409, f"dataset {key} is {dataset.status.value}, not ready"
                           + (f": {dataset.error}" if dataset.error else f"; wait for job {dataset.job_id}"))
        response = send_blob(dataset.blob_key, mimetype="application/zip", name=f"{dataset.name}-{key[:12]}.zip",
                             etag=dataset.sha256, cache_control="private, no-cache",
                             gone=f"the file of dataset {key} is gone; request the dataset again")
        response.headers["X-Checksum-SHA256"] = dataset.sha256
        served = (response.content_length or 0) if response.status_code in (200, 206) else 0  # not a 304
        full = response.status_code == 200
        db.session.execute(update(Dataset).where(Dataset.id == dataset.id).values(
            downloads=Dataset.downloads + (1 if full else 0), bytes_served=Dataset.bytes_served + served,
            last_access_at=utcnow()))
        db.session.flush()
        return response
