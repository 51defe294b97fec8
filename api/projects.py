"""Projects and their members."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import func, select

from api.auth import current_user, project_access, require_role
from api.blueprint import Blueprint, Extended, ensure_name_free, page
from api.errors import ApiError
from api.extensions import db, runtime
from api.live_access import recheck_project, recheck_user
from api.schemas import MemberIn, MembershipOut, MemberPage, PageQuery, ProjectIn, ProjectOut, ProjectPage, ProjectPatch
from store.db import after_commit
from store.schema import Job, JobStatus, Membership, Project, Role, User

bp = Blueprint("projects", __name__, url_prefix="/api/projects", description="Projects and memberships")


def _name_free(name: str, exclude_id: int | None = None) -> None:
    ensure_name_free(Project, name, f"a project named {name!r} already exists", exclude_id=exclude_id)


@bp.route("")
class Projects(MethodView):
    @bp.arguments(PageQuery, location="query")
    @bp.response(200, ProjectPage)
    def get(self, args):
        """Projects the caller belongs to (all of them for a superuser)."""
        user = current_user()
        if user.is_superuser:
            q = select(Project, func.coalesce(Membership.role, Role.admin.value)).outerjoin(
                Membership, (Membership.project_id == Project.id) & (Membership.user_id == user.id)
            )
        else:
            q = select(Project, Membership.role).join(Membership, Membership.project_id == Project.id).where(
                Membership.user_id == user.id
            )
        return page(q.order_by(Project.id), args, lambda row: Extended(row[0], role=Role(row[1])), scalars=False)

    @bp.arguments(ProjectIn)
    @bp.response(201, ProjectOut)
    def post(self, data):
        """Create a project; the caller becomes its admin."""
        _name_free(data["name"])
        user = current_user()
        project = Project(name=data["name"], description=data["description"], created_by=user.id, stats={})
        db.session.add(project)
        db.session.flush()
        db.session.add(Membership(project_id=project.id, user_id=user.id, role=Role.admin))
        db.session.flush()
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
        if "name" in data:
            _name_free(data["name"], exclude_id=project.id)
        for key, value in data.items():
            setattr(project, key, value)
        db.session.flush()
        return Extended(project, role=role)

    @bp.response(204)
    def delete(self, project_id):
        """Delete the project and everything in it. Refused while any of its jobs is unfinished."""
        project, _ = project_access(project_id, Role.admin)
        busy = db.session.scalar(
            select(func.count()).select_from(Job).where(
                Job.project_id == project.id, Job.status.in_([JobStatus.queued, JobStatus.running])
            )
        )
        if busy:
            raise ApiError(409, f"project {project.id} has {busy} unfinished job(s); cancel them first")
        members = db.session.scalars(select(Membership.user_id).where(Membership.project_id == project.id)).all()
        db.session.delete(project)
        rt = runtime()
        after_commit(db.session, lambda: recheck_project(rt, project_id, members))  # its sockets leave its rooms


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
        user = db.session.scalar(select(User).where(User.name == user_name))
        if user is None:
            raise ApiError(404, f"user {user_name!r} not found")
        membership = db.session.get(Membership, (project_id, user.id))
        changed = membership is not None and membership.role is not data["role"]
        if membership is None:
            membership = Membership(project_id=project_id, user_id=user.id, role=data["role"])
            db.session.add(membership)
        else:
            if membership.role is Role.admin and data["role"] is not Role.admin:
                _keep_an_admin(project_id, user.id)
            membership.role = data["role"]
        db.session.flush()
        if changed:  # the rooms' rule (`api.realtime`) decides what the new role sees
            rt, user_id = runtime(), user.id
            after_commit(db.session, lambda: recheck_user(rt, user_id))
        db.session.refresh(membership)
        return membership

    @bp.response(204)
    def delete(self, project_id, user_name):
        require_role(project_id, Role.admin)
        user = db.session.scalar(select(User).where(User.name == user_name))
        membership = db.session.get(Membership, (project_id, user.id)) if user else None
        if membership is None:
            raise ApiError(404, f"{user_name!r} is not a member of project {project_id}")
        if membership.role is Role.admin:
            _keep_an_admin(project_id, user.id)
        db.session.delete(membership)
        rt, user_id = runtime(), user.id
        after_commit(db.session, lambda: recheck_user(rt, user_id))  # their sockets leave the project's rooms


def _keep_an_admin(project_id: int, leaving_user_id: int) -> None:
    others = db.session.scalar(
        select(func.count()).select_from(Membership).where(
            Membership.project_id == project_id, Membership.role == Role.admin, Membership.user_id != leaving_user_id
        )
    )
    if not others:
        raise ApiError(409, f"project {project_id} would have no admin left")
