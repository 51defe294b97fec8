"""Projects and their members: every write, in the caller's transaction.

A project's name is unique; whoever creates a project becomes its admin; a project with unfinished jobs is
not deleted (cancel them first); a project always keeps an admin, so the last one can neither leave nor be
demoted. A change of who may see a project is told to the live connections after the commit: the caller
passes how (`recheck`), the command decides when and whom.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import func, select

from services.errors import CommandError
from store.db import after_commit
from store.schema import Job, JobStatus, Membership, Project, Role, User


def ensure_name_free(session, model, name: str, message: str, *, exclude_id: int | None = None, **scope) -> None:
    """409 naming the field when another `model` row in the same scope (e.g. project_id=3) has `name`.
    The unique constraints back this up against races."""
    q = select(model.id).where(model.name == name, *(getattr(model, k) == v for k, v in scope.items()))
    if exclude_id is not None:
        q = q.where(model.id != exclude_id)
    if session.scalar(q) is not None:
        raise CommandError(409, message, fields={"name": ["already taken"]})


def _name_free(session, name: str, exclude_id: int | None = None) -> None:
    ensure_name_free(session, Project, name, f"a project named {name!r} already exists", exclude_id=exclude_id)


def create_project(session, name: str, description: str, user_id: int) -> Project:
    """A new project; its creator becomes its admin."""
    _name_free(session, name)
    project = Project(name=name, description=description, created_by=user_id, stats={})
    session.add(project)
    session.flush()
    session.add(Membership(project_id=project.id, user_id=user_id, role=Role.admin))
    session.flush()
    return project


def change_project(session, project: Project, changes: dict) -> Project:
    """Rename it or change its description (`changes` holds the fields sent)."""
    if "name" in changes:
        _name_free(session, changes["name"], exclude_id=project.id)
    for key, value in changes.items():
        setattr(project, key, value)
    session.flush()
    return project


def delete_project(session, project: Project, *, recheck: Callable[[int, list[int]], None]) -> None:
    """Delete the project and everything in it; refused while any of its jobs is unfinished. After the
    commit, `recheck(project_id, former_member_ids)`: their connections leave its rooms."""
    busy = session.scalar(
        select(func.count()).select_from(Job).where(
            Job.project_id == project.id, Job.status.in_([JobStatus.queued, JobStatus.running])
        )
    )
    if busy:
        raise CommandError(409, f"project {project.id} has {busy} unfinished job(s); cancel them first")
    project_id = project.id
    members = session.scalars(select(Membership.user_id).where(Membership.project_id == project_id)).all()
    session.delete(project)
    after_commit(session, lambda: recheck(project_id, members))


def _user_named(session, user_name: str) -> User | None:
    return session.scalar(select(User).where(User.name == user_name))


def set_member(session, project_id: int, user_name: str, role: Role, *,
               recheck: Callable[[int], None]) -> Membership:
    """Add the user to the project with `role`, or change their role. After the commit of a changed role,
    `recheck(user_id)`: what the new role sees is decided by the rooms' rule."""
    user = _user_named(session, user_name)
    if user is None:
        raise CommandError(404, f"user {user_name!r} not found")
    membership = session.get(Membership, (project_id, user.id))
    changed = membership is not None and membership.role is not role
    if membership is None:
        membership = Membership(project_id=project_id, user_id=user.id, role=role)
        session.add(membership)
    else:
        if membership.role is Role.admin and role is not Role.admin:
            _keep_an_admin(session, project_id, user.id)
        membership.role = role
    session.flush()
    if changed:
        user_id = user.id
        after_commit(session, lambda: recheck(user_id))
    session.refresh(membership)
    return membership


def remove_member(session, project_id: int, user_name: str, *, recheck: Callable[[int], None]) -> None:
    """Take the user out of the project. After the commit, `recheck(user_id)`: their connections leave the
    project's rooms."""
    user = _user_named(session, user_name)
    membership = session.get(Membership, (project_id, user.id)) if user else None
    if membership is None:
        raise CommandError(404, f"{user_name!r} is not a member of project {project_id}")
    if membership.role is Role.admin:
        _keep_an_admin(session, project_id, user.id)
    session.delete(membership)
    user_id = user.id
    after_commit(session, lambda: recheck(user_id))


def _keep_an_admin(session, project_id: int, leaving_user_id: int) -> None:
    others = session.scalar(
        select(func.count()).select_from(Membership).where(
            Membership.project_id == project_id, Membership.role == Role.admin, Membership.user_id != leaving_user_id
        )
    )
    if not others:
        raise CommandError(409, f"project {project_id} would have no admin left")
