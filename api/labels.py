"""Classes (optionally grouped) and label maps (ordered class lists; class id in a map = position + 1)."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import func, select

from api.auth import require_role
from api.blueprint import Blueprint, ensure_name_free, in_project, page
from api.errors import ApiError
from api.extensions import db
from api.schemas import (
    ClassIn, ClassOut, ClassPage, ClassPatch, ClassQuery, LabelMapIn, LabelMapOut, LabelMapPage, LabelMapPatch,
    PageQuery,
)
from store.schema import Annotation, Checkpoint, Dataset, LabelClass, LabelMap, LabelMapEntry, Role

bp = Blueprint("labels", __name__, url_prefix="/api/projects/<int:project_id>", description="Classes and label maps")


def _get_class(project_id: int, class_id: int) -> LabelClass:
    return in_project(LabelClass, class_id, project_id, "class")


def _unique_name(model, project_id: int, name: str, exclude_id: int | None = None) -> None:
    what = "class" if model is LabelClass else "label map"
    ensure_name_free(model, name, f"a {what} named {name!r} already exists in project {project_id}",
                     exclude_id=exclude_id, project_id=project_id)


@bp.route("/classes")
class Classes(MethodView):
    @bp.arguments(ClassQuery, location="query")
    @bp.response(200, ClassPage)
    def get(self, args, project_id):
        require_role(project_id)
        q = select(LabelClass).where(LabelClass.project_id == project_id)
        if "group" in args:
            q = q.where(LabelClass.group == args["group"])
        return page(q.order_by(LabelClass.id), args, lambda c: c)

    @bp.arguments(ClassIn)
    @bp.response(201, ClassOut)
    def post(self, data, project_id):
        require_role(project_id, Role.admin)
        _unique_name(LabelClass, project_id, data["name"])
        obj = LabelClass(project_id=project_id, **data)
        db.session.add(obj)
        db.session.flush()
        return obj


@bp.route("/classes/<int:class_id>")
class ClassItem(MethodView):
    @bp.response(200, ClassOut)
    def get(self, project_id, class_id):
        require_role(project_id)
        return _get_class(project_id, class_id)

    @bp.arguments(ClassPatch, required=False)  # no body changes nothing
    @bp.response(200, ClassOut)
    def patch(self, data, project_id, class_id):
        require_role(project_id, Role.admin)
        obj = _get_class(project_id, class_id)
        if "name" in data:
            _unique_name(LabelClass, project_id, data["name"], exclude_id=obj.id)
        for key, value in data.items():
            setattr(obj, key, value)
        db.session.flush()
        return obj

    @bp.response(204)
    def delete(self, project_id, class_id):
        """Refused while a label map or an annotation uses the class (say which)."""
        require_role(project_id, Role.admin)
        obj = _get_class(project_id, class_id)
        maps = db.session.scalars(
            select(LabelMap.name).join(LabelMapEntry, LabelMapEntry.label_map_id == LabelMap.id)
            .where(LabelMapEntry.class_id == obj.id)
        ).all()
        boxes = db.session.scalar(select(func.count()).select_from(Annotation).where(Annotation.class_id == obj.id))
        if maps or boxes:
            raise ApiError(409, f"class {obj.name!r} is in use: label maps {sorted(maps)}, {boxes} annotation(s)")
        db.session.delete(obj)
        db.session.flush()


def _entries(project_id: int, class_ids: list[int]) -> list[LabelMapEntry]:
    found = set(db.session.scalars(
        select(LabelClass.id).where(LabelClass.project_id == project_id, LabelClass.id.in_(class_ids))
    ))
    missing = [c for c in class_ids if c not in found]
    if missing:
        raise ApiError(400, f"unknown class ids in project {project_id}: {missing}", fields={"classes": [f"unknown: {missing}"]})
    return [LabelMapEntry(position=i, class_id=c) for i, c in enumerate(class_ids)]


def get_label_map(project_id: int, map_id: int) -> LabelMap:
    return in_project(LabelMap, map_id, project_id, "label map")


def _map_users(map_id: int) -> list[str]:
    datasets = db.session.scalar(select(func.count()).select_from(Dataset).where(Dataset.label_map_id == map_id))
    checkpoints = db.session.scalar(select(func.count()).select_from(Checkpoint).where(Checkpoint.label_map_id == map_id))
    return [f"{n} {what}" for n, what in ((datasets, "dataset(s)"), (checkpoints, "checkpoint(s)")) if n]


@bp.route("/label-maps")
class LabelMaps(MethodView):
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, LabelMapPage)
    def get(self, args, project_id):
        require_role(project_id)
        q = select(LabelMap).where(LabelMap.project_id == project_id).order_by(LabelMap.id)
        return page(q, args)

    @bp.arguments(LabelMapIn)
    @bp.response(201, LabelMapOut)
    def post(self, data, project_id):
        require_role(project_id, Role.admin)
        _unique_name(LabelMap, project_id, data["name"])
        obj = LabelMap(project_id=project_id, name=data["name"], description=data["description"])
        obj.entries = _entries(project_id, data["classes"])
        db.session.add(obj)
        db.session.flush()
        return obj


@bp.route("/label-maps/<int:map_id>")
class LabelMapItem(MethodView):
    @bp.response(200, LabelMapOut)
    def get(self, project_id, map_id):
        require_role(project_id)
        return get_label_map(project_id, map_id)

    @bp.arguments(LabelMapPatch, required=False)  # no body changes nothing
    @bp.response(200, LabelMapOut)
    def patch(self, data, project_id, map_id):
        """Rename or change the class list. A map that datasets or checkpoints were built from is frozen:
        their class ids must keep meaning the same classes; create a new map instead."""
        require_role(project_id, Role.admin)
        obj = get_label_map(project_id, map_id)
        if "name" in data:
            _unique_name(LabelMap, project_id, data["name"], exclude_id=obj.id)
            obj.name = data["name"]
        if "description" in data:
            obj.description = data["description"]
        if "classes" in data:
            users = _map_users(obj.id)
            if users and data["classes"] != [e.class_id for e in obj.entries]:
                raise ApiError(409, f"label map {obj.id} is used by {', '.join(users)}; its classes are frozen")
            entries = _entries(project_id, data["classes"])
            obj.entries.clear()
            db.session.flush()  # positions are a primary key: old rows go before new ones arrive
            obj.entries.extend(entries)
        db.session.flush()
        db.session.refresh(obj)
        return obj

    @bp.response(204)
    def delete(self, project_id, map_id):
        require_role(project_id, Role.admin)
        obj = get_label_map(project_id, map_id)
        users = _map_users(obj.id)
        if users:
            raise ApiError(409, f"label map {obj.id} is used by {', '.join(users)}")
        db.session.delete(obj)
        db.session.flush()
