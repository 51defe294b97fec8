"""Classes (optionally grouped) and label maps (ordered class lists; class id in a map = position + 1).
The rules (unique names, what is in use, frozen maps) are commands in `services/labels.py`; these views
parse, call one, and serialise."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import select

from api.auth import require_role
from api.blueprint import Blueprint, in_project, page
from api.extensions import db
from api.schemas import (
    ClassIn, ClassOut, ClassPage, ClassPatch, ClassQuery, LabelMapIn, LabelMapOut, LabelMapPage, LabelMapPatch,
    PageQuery,
)
from services import labels as commands
from store.schema import LabelClass, LabelMap, Role

bp = Blueprint("labels", __name__, url_prefix="/api/projects/<int:project_id>", description="Classes and label maps")


def _get_class(project_id: int, class_id: int) -> LabelClass:
    return in_project(LabelClass, class_id, project_id, "class")


def get_label_map(project_id: int, map_id: int) -> LabelMap:
    return in_project(LabelMap, map_id, project_id, "label map")


@bp.route("/classes")
class Classes(MethodView):
    @bp.arguments(ClassQuery, location="query")
    @bp.response(200, ClassPage)
    def get(self, args, project_id):
        require_role(project_id)
        q = select(LabelClass).where(LabelClass.project_id == project_id)
        if "group" in args:
            q = q.where(LabelClass.group == args["group"])
        return page(q.order_by(LabelClass.id), args)

    @bp.arguments(ClassIn)
    @bp.response(201, ClassOut)
    def post(self, data, project_id):
        require_role(project_id, Role.admin)
        return commands.create_class(db.session, project_id, data)


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
        return commands.change_class(db.session, _get_class(project_id, class_id), data)

    @bp.response(204)
    def delete(self, project_id, class_id):
        """Refused while a label map or an annotation uses the class (say which)."""
        require_role(project_id, Role.admin)
        commands.delete_class(db.session, _get_class(project_id, class_id))


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
        return commands.create_label_map(db.session, project_id, data["name"], data["description"], data["classes"])


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
        return commands.change_label_map(db.session, get_label_map(project_id, map_id), data)

    @bp.response(204)
    def delete(self, project_id, map_id):
        require_role(project_id, Role.admin)
        commands.delete_label_map(db.session, get_label_map(project_id, map_id))
