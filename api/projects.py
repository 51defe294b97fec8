"""Projects and their members. The rules (unique names, who is admin, what may be deleted) are commands in
`services/projects.py`; these views parse, call one, and serialise."""

from __future__ import annotations

from functools import partial

from flask.views import MethodView
from sqlalchemy import func, select

from api.auth import current_user, project_access, require_role
from api.blueprint import Blueprint, Extended, page
from api.extensions import db, runtime
from api.live_access import recheck_project, recheck_user
from api.schemas import MemberIn, MembershipOut, MemberPage, PageQuery, ProjectIn, ProjectOut, ProjectPage, ProjectPatch
from services import projects as commands
from store.schema import Membership, Project, Role

bp = Blueprint("projects", __name__, url_prefix="/api/projects", description="Projects and memberships")


@bp.route("")
class Projects(MethodView):
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, ProjectPage)
    def get(self, args):
        """Projects the caller belongs to (all of them for a superuser), newest first."""
        user = current_user()
        if user.is_superuser:
            q = select(Project, func.coalesce(Membership.role, Role.admin.value)).outerjoin(
                Membership, (Membership.project_id == Project.id) & (Membership.user_id == user.id)
            )
        else:
            q = select(Project, Membership.role).join(Membership, Membership.project_id == Project.id).where(
                Membership.user_id == user.id
            )
        return page(q.order_by(Project.id.desc()), args, lambda row: Extended(row[0], role=Role(row[1])), scalars=False)

    @bp.arguments(ProjectIn)
    @bp.response(201, ProjectOut)
    def post(self, data):
        """Create a project; the caller becomes its admin."""
        project = commands.create_project(db.session, data["name"], data["description"], current_user().id)
        return Extended(project, role=Role.admin)


@bp.route("/<int:project_id>")
class ProjectItem(MethodView):
    @bp.response(200, ProjectOut)
    def get(self, project_id):
        project, role = project_access(project_id)
        return Extended(project, role=role)

    @bp.arguments(ProjectPatch, required=False)  # no body changes nothing
    @bp.response(200, ProjectOut)
    def patch(self, data, project_id):
        project, role = project_access(project_id, Role.admin)
        return Extended(commands.change_project(db.session, project, data), role=role)

    @bp.response(204)
    def delete(self, project_id):
        """Delete the project and everything in it. Refused while any of its jobs is unfinished."""
        project, _ = project_access(project_id, Role.admin)
        commands.delete_project(db.session, project, recheck=partial(recheck_project, runtime()))


@bp.route("/<int:project_id>/members")
class Members(MethodView):
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, MemberPage)
    def get(self, args, project_id):
        require_role(project_id)
        q = select(Membership).where(Membership.project_id == project_id).order_by(Membership.user_id)
        return page(q, args)


@bp.route("/<int:project_id>/members/<string:user_name>")
class MemberItem(MethodView):
    @bp.arguments(MemberIn)
    @bp.response(200, MembershipOut)
    def put(self, data, project_id, user_name):
        """Add a user to the project or change their role (admins only)."""
        require_role(project_id, Role.admin)
        return commands.set_member(db.session, project_id, user_name, data["role"],
                                   recheck=partial(recheck_user, runtime()))

    @bp.response(204)
    def delete(self, project_id, user_name):
        require_role(project_id, Role.admin)
        commands.remove_member(db.session, project_id, user_name, recheck=partial(recheck_user, runtime()))
