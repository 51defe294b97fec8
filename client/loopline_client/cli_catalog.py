"""`lloop project`, `lloop class` and `lloop label-map`: projects, classes, label maps."""

from __future__ import annotations

import click

from loopline_client import config
from loopline_client.cli_common import _output_options, _table, pass_state, project_option, State
from loopline_client.errors import LooplineError


# --- projects, classes, label maps ---------------------------------------------------------------
@click.group()
def project() -> None:
    """Projects: list, create, show, use (as the default), delete."""


@project.command("list")
@_output_options
@pass_state
def project_list(state: State) -> None:
    rows = state.client().projects()
    state.out(rows, _table(rows, ["id", "name", "role", "description"]))


@project.command("create")
@click.argument("name")
@click.option("--description")
@click.option("--use", is_flag=True, help="and make it the default project")
@_output_options
@pass_state
def project_create(state: State, name: str, description: str | None, use: bool) -> None:
    created = state.client().create_project(name, description)
    if use:
        _use(state, created)
    state.out(created, f"project {created['id']} {created['name']}")


@project.command("show")
@click.argument("ref", metavar="ID|NAME", required=False)
@_output_options
@pass_state
def project_show(state: State, ref: str | None) -> None:
    found = state.client().project(state.project_id(ref))
    stats = found.get("stats") or {}
    state.out(found, f"project {found['id']} {found['name']} ({found.get('role')})"
              + "".join(f"\n  {k}: {v}" for k, v in stats.items() if not isinstance(v, (dict, list))))


@project.command("use")
@click.argument("ref", metavar="ID|NAME")
@_output_options
@pass_state
def project_use(state: State, ref: str) -> None:
    """Make a project the default of the commands that take --project."""
    found = state.client().find_project(ref)
    _use(state, found)
    state.out(found, f"using project {found['id']} {found['name']}")


def _use(state: State, found: dict) -> None:
    saved = state.saved()
    if not saved.get("url"):
        raise LooplineError(401, "not_logged_in", "log in first (`lloop login URL`): the default project is kept "
                                                  "with the server's address")
    config.save({**saved, "project": str(found["id"])})


@project.command("delete")
@click.argument("ref", metavar="ID|NAME")
@click.option("--yes", is_flag=True, help="do not ask")
@_output_options
@pass_state
def project_delete(state: State, ref: str, yes: bool) -> None:
    pid = state.project_id(ref)
    if not yes:
        click.confirm(f"delete project {pid} and everything in it?", abort=True, err=True)
    state.client().delete_project(pid)
    state.out({"deleted": pid}, f"deleted project {pid}")


@click.group("class")
def class_() -> None:
    """Classes of a project."""


@class_.command("list")
@project_option
@_output_options
@pass_state
def class_list(state: State, project_ref) -> None:
    rows = state.client().classes(state.project_id(project_ref))
    state.out(rows, _table(rows, ["id", "name", "group", "color"]))


@class_.command("add")
@click.argument("names", nargs=-1, required=True)
@click.option("--group", help="e.g. the brand of a logo")
@project_option
@_output_options
@pass_state
def class_add(state: State, names, group, project_ref) -> None:
    """Add one class per NAME."""
    pid = state.project_id(project_ref)
    made = [state.client().create_class(pid, n, group=group) for n in names]
    state.out(made, "\n".join(f"class {c['id']} {c['name']}" for c in made))


@click.group("label-map")
def label_map() -> None:
    """Label maps: which classes a dataset holds, in which order."""


@label_map.command("list")
@project_option
@_output_options
@pass_state
def label_map_list(state: State, project_ref) -> None:
    rows = state.client().label_maps(state.project_id(project_ref))
    state.out(rows, _table([{**m, "classes": ", ".join(e["name"] for e in m.get("entries", []))} for m in rows],
                           ["id", "name", "classes"]))


@label_map.command("create")
@click.argument("name")
@click.argument("classes", nargs=-1, required=True)
@project_option
@_output_options
@pass_state
def label_map_create(state: State, name, classes, project_ref) -> None:
    """A map NAME of CLASSES (names or ids) in this order."""
    made = state.client().create_label_map(state.project_id(project_ref), name, list(classes))
    state.out(made, f"label map {made['id']} {made['name']}: "
              + ", ".join(f"{e['id']}={e['name']}" for e in made["entries"]))
