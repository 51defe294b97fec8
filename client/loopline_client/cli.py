"""`lloop`: the loop from a terminal or a script, on top of the SDK.

`lloop login URL` checks the server and the token and keeps both in the user's config folder (0600);
then one command per step: `project`, `class`, `label-map`, `images upload`, `boxes`, `coco import|export`,
`dataset get|build`, `checkpoint`, `train`, `deploy`, `deployment`, `suggest`, `pipeline run`, `jobs
watch|wait|cancel|retry`. Long steps draw progress bars on stderr (`-q` turns them off); stdout carries
the answer only, as text or, with `--json`, one JSON document. An error is one line on stderr and an
exit status that says what failed (EXIT_CODES; `lloop --help` lists them).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from loopline_client import __version__, config
from loopline_client.errors import (ChecksumMismatch, ConfigError, JobFailed, LooplineError, UnsafeArchive,
                                    Unreachable)

EXIT_CODES = {
    0: "success",
    1: "an unexpected error (a bug: please report it)",
    2: "bad usage: an unknown option, a missing argument, a bad --config, a file that cannot be read",
    3: "not logged in, or the server refused the token (401) or the role (403)",
    4: "not found: an unknown project, image, checkpoint, job, ... (404)",
    5: "the server refused the request: bad input (400, 413, 415, 422) or a conflict (409)",
    6: "no loopline server answered at that URL, or it failed (5xx)",
    7: "a job ended failed or cancelled (a build, an ingest, a training run, a deployment)",
    8: "timed out waiting for a job",
    9: "a download did not verify (checksum, unsafe archive); nothing was kept",
    10: "the client's settings file (written by `lloop login`) is unreadable",
    130: "interrupted (Ctrl-C)",
}
_EPILOG = "Exit status:\n\n\b\n" + "\n".join(f"  {k:>3}  {v}" for k, v in EXIT_CODES.items())


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, LooplineError):
        if exc.status == 0 or exc.status >= 500:
            return 6
        return {401: 3, 403: 3, 404: 4}.get(exc.status, 5)
    if isinstance(exc, JobFailed):
        return 7
    if isinstance(exc, TimeoutError):
        return 8
    if isinstance(exc, (ChecksumMismatch, UnsafeArchive)):
        return 9
    if isinstance(exc, ConfigError):
        return 10
    return 1


class State:
    """What the group options decided, and the client made from them on first use."""

    def __init__(self, url: str | None, token: str | None, as_json: bool, quiet: bool, project: str | None = None):
        self.url, self.token, self.as_json, self.quiet, self.project = url, token, as_json, quiet, project
        self._client = None
        self._saved: dict | None = None

    @property
    def progress(self) -> bool:
        return not self.quiet

    def saved(self) -> dict:
        if self._saved is None:
            self._saved = config.load()
        return self._saved

    def client(self):
        if self._client is None:
            from loopline_client.sdk import Loopline

            url = self.url or self.saved().get("url")
            token = self.token or self.saved().get("token")
            if not url or not token:
                raise LooplineError(401, "not_logged_in", "not logged in: run `lloop login URL` (or pass --url and "
                                                          "--token, or set LOOPLINE_URL and LOOPLINE_TOKEN)")
            self._client = Loopline(url, token, poll_interval=float(os.environ.get("LOOPLINE_POLL_INTERVAL", 2)))
        return self._client

    def project_id(self, ref: str | None) -> int:
        """The project an option names (id or name), else the one `lloop project use` saved."""
        ref = ref or self.project or os.environ.get("LOOPLINE_PROJECT") or self.saved().get("project")
        if not ref:
            raise click.UsageError("which project? pass --project ID|NAME (or run `lloop project use NAME`)")
        return self.client().find_project(str(ref))["id"]

    def out(self, value, text: str | None = None) -> None:
        """The answer: JSON with --json, else `text` (or the value itself)."""
        if self.as_json:
            click.echo(json.dumps(value, indent=2, default=str))
        elif text is not None:
            click.echo(text)
        elif value is not None:
            click.echo(json.dumps(value, indent=2, default=str))

    def note(self, text: str) -> None:
        """A side remark on stderr (not with -q)."""
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)


def _output_options(fn):
    """--json and -q on every command too, so they may come after it (`lloop project list --json`)."""

    def set_json(ctx, _param, value):
        if value:
            ctx.find_object(State).as_json = True

    def set_quiet(ctx, _param, value):
        if value:
            ctx.find_object(State).quiet = True

    fn = click.option("--json", "_json", is_flag=True, expose_value=False, callback=set_json,
                      help="print the answer as JSON")(fn)
    return click.option("-q", "--quiet", "_quiet", is_flag=True, expose_value=False, callback=set_quiet,
                        help="no progress bars or remarks on stderr")(fn)


project_option = click.option("-p", "--project", "project_ref", metavar="ID|NAME",
                              help="project id or name (default: `lloop project use`, or $LOOPLINE_PROJECT)")
pass_state = click.make_pass_decorator(State)


def _table(rows: list[dict], cols: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(cols, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _json_arg(_ctx, param, text: str | None):
    """A JSON object given inline or as @file: a bad one is a usage error, said once."""
    if not text:
        return {}
    source = "the value"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot read {source}: {exc.strerror}", param=param) from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not valid JSON: {exc}", param=param) from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"{source} must be a JSON object, like '{{\"variations\": 2}}'", param=param)
    return value


# --- the group -----------------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=_EPILOG)
@click.option("--url", envvar="LOOPLINE_URL", help="the API (default: what `lloop login` saved; $LOOPLINE_URL)")
@click.option("--token", envvar="LOOPLINE_TOKEN", help="API token (default: what `lloop login` saved; $LOOPLINE_TOKEN)")
@click.option("-p", "--project", metavar="ID|NAME", help="the project of the commands that take one")
@click.option("--json", "as_json", is_flag=True, help="print answers as JSON (for scripts)")
@click.option("-q", "--quiet", is_flag=True, help="no progress bars or remarks on stderr")
@click.version_option(__version__, prog_name="lloop")
@click.pass_context
def cli(ctx, url, token, project, as_json, quiet) -> None:
    """lloop: the loopline client. Log in once, then run the loop: upload images, import COCO, build a
    dataset, train, deploy, ask for suggestions, watch the jobs."""
    ctx.obj = State(url, token, as_json, quiet, project)


@cli.command()
@click.argument("url")
@click.option("--token", envvar="LOOPLINE_TOKEN", help="API token (asked for when not given; $LOOPLINE_TOKEN)")
@_output_options
@pass_state
def login(state: State, url: str, token: str | None) -> None:
    """Check URL and a token against the server, then keep both for the next commands."""
    from loopline_client.sdk import Loopline

    if "://" not in url:
        raise click.BadParameter("give the full address, like http://127.0.0.1:8000", param_hint="URL")
    token = token or state.token or click.prompt("token", hide_input=True, err=True)
    client = Loopline(url, token.strip())
    try:
        health = client.health()
    except LooplineError as exc:
        if exc.status:
            raise Unreachable(f"{url} does not answer like a loopline server (GET /api/health: {exc})") from None
        raise
    if not isinstance(health, dict) or "status" not in health:
        raise Unreachable(f"{url} does not answer like a loopline server (GET /api/health)")
    try:
        me = client.me()
    except LooplineError as exc:
        if exc.status == 401:
            raise LooplineError(401, exc.code, f"{url} refused the token: {exc.message}") from None
        raise
    try:
        saved = config.load()
    except ConfigError:  # a broken file is what login rewrites
        saved = {}
    keep = {"project": saved["project"]} if saved.get("project") and saved.get("url") == client.url else {}
    path = config.save({"url": client.url, "token": token.strip(), "user": me["user"]["name"], **keep})
    state.out({"url": client.url, "user": me["user"], "config": str(path)},
              f"logged in to {client.url} as {me['user']['name']} (saved in {path})")


@cli.command()
@_output_options
@pass_state
def logout(state: State) -> None:
    """Forget the saved server and token."""
    path = config.config_path()
    removed = config.remove()
    state.out({"removed": removed, "config": str(path)}, f"removed {path}" if removed else "was not logged in")


@cli.command()
@_output_options
@pass_state
def whoami(state: State) -> None:
    """The user the token belongs to, and their projects."""
    me = state.client().me()
    roles = ", ".join(f"{m.get('project_name', m.get('project_id'))} ({m.get('role')})"
                      for m in me.get("memberships", []))
    state.out(me, f"{me['user']['name']} at {state.client().url}" + (f": {roles}" if roles else ""))


# --- projects, classes, label maps ---------------------------------------------------------------
@cli.group()
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


@cli.group("class")
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


@cli.group("label-map")
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


# --- images, boxes, COCO -------------------------------------------------------------------------
@cli.group()
def images() -> None:
    """Images: upload files, folders, zips and URLs; list them."""


def _upload_report(state: State, result: dict, what: str) -> None:
    counts = ", ".join(f"{result[k]} {k}" for k in ("accepted", "duplicate", "rejected", "skipped") if result.get(k))
    jobs = ", ".join(j["id"] for j in result["jobs"])
    lines = [f"{what}: {counts or 'nothing'} (job {jobs})"]
    extra = result.get("result") or {}
    lines += [f"  {k}: {v}" for k, v in extra.items() if not isinstance(v, (dict, list))]
    for f in result["files"]:
        if f["outcome"] != "accepted":
            why = f" {f['reason']}: {f.get('message', '')}" if f.get("reason") else ""
            lines.append(f"  {f['outcome']} {f['name']}{why}")
    state.out(result, "\n".join(lines))


@images.command("upload")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, readable=True))
@click.option("--url", "urls", multiple=True, help="an image URL to fetch (repeat for more)")
@click.option("--no-wait", is_flag=True, help="answer once the files are sent; do not wait for the ingest")
@project_option
@_output_options
@pass_state
def images_upload(state: State, paths, urls, no_wait, project_ref) -> None:
    """Upload image files, zips of them, folders (walked for images and zips) and --url addresses;
    prints each file's outcome (accepted, duplicate, rejected with the reason)."""
    if not paths and not urls:
        raise click.UsageError("give files, folders or zips to upload, or --url")
    result = state.client().upload(state.project_id(project_ref), paths, urls, wait=not no_wait,
                                   progress=state.progress)
    _upload_report(state, result, "upload")


@images.command("list")
@click.option("--annotated/--not-annotated", default=None, help="only images with / without boxes")
@click.option("--limit", type=int, default=50, show_default=True)
@project_option
@_output_options
@pass_state
def images_list(state: State, annotated, limit, project_ref) -> None:
    rows = list(state.client().images(state.project_id(project_ref), limit=limit, annotated=annotated))
    state.out(rows, _table(rows, ["id", "original_name", "width", "height", "boxes", "revision"]))


@cli.group()
def boxes() -> None:
    """Boxes of an image (pixel x, y, w, h), written under the image's revision."""


@boxes.command("list")
@click.argument("image_id", type=int)
@project_option
@_output_options
@pass_state
def boxes_list(state: State, image_id, project_ref) -> None:
    got = state.client().boxes(state.project_id(project_ref), image_id)
    state.out(got, f"image {image_id}, revision {got['revision']}\n"
              + _table(got["items"], ["id", "class_id", "x", "y", "w", "h", "source", "status", "score"]))


@boxes.command("add")
@click.argument("image_id", type=int)
@click.option("--class", "class_ref", required=True, help="class id or name")
@click.option("--box", nargs=4, type=float, required=True, metavar="X Y W H", help="pixels")
@click.option("--revision", type=int, help="the image revision you last read (default: read it now)")
@project_option
@_output_options
@pass_state
def boxes_add(state: State, image_id, class_ref, box, revision, project_ref) -> None:
    client = state.client()
    pid = state.project_id(project_ref)
    class_id = client.class_ids(pid, [class_ref])[0]
    if revision is None:
        revision = client.boxes(pid, image_id)["revision"]
    written = client.add_box(pid, image_id, revision, class_id, *box)
    state.out(written, f"box {written['annotation']['id']} on image {image_id}, revision {written['revision']}")


@cli.group()
def coco() -> None:
    """COCO detection files: import with their images, export."""


@coco.command("import")
@click.argument("annotations", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.argument("images", nargs=-1, type=click.Path(exists=True, readable=True))
@click.option("--no-wait", is_flag=True, help="do not wait for the import job")
@project_option
@_output_options
@pass_state
def coco_import(state: State, annotations, images, no_wait, project_ref) -> None:
    """Import ANNOTATIONS (COCO JSON) with its IMAGES (files, folders, zips): classes matched or created
    by name, boxes attached by file name."""
    if not images:
        raise click.UsageError("give the images the COCO file names (files, folders or zips)")
    result = state.client().import_coco(state.project_id(project_ref), annotations, images, wait=not no_wait,
                                        progress=state.progress)
    _upload_report(state, result, "coco import")


@coco.command("export")
@click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), help="file (default: stdout)")
@click.option("--status", help="boxes with this status (default: accepted)")
@click.option("--label-map", "label_map_id", type=int, help="only this label map's classes")
@project_option
@_output_options
@pass_state
def coco_export(state: State, out, status, label_map_id, project_ref) -> None:
    doc = state.client().export_coco(state.project_id(project_ref), status, label_map_id)
    text = json.dumps(doc, indent=2)
    if out:
        tmp = Path(out).with_name(Path(out).name + ".part")
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, out)
        state.note(f"{len(doc.get('images', []))} images, {len(doc.get('annotations', []))} boxes -> {out}")
    else:
        click.echo(text)


# --- datasets ------------------------------------------------------------------------------------
@cli.group()
def dataset() -> None:
    """Datasets: build one on the server, download it verified."""


def _dataset_options(fn):
    for opt in reversed([
        project_option,
        click.option("--name", required=True, help="dataset name"),
        click.option("--handler", default="detection@1", show_default=True, help="handler@version"),
        click.option("--label-map", "label_map_ref", required=True, help="label map id or name"),
        click.option("--subset", type=click.Choice(["all", "failed"]), default="all", show_default=True),
        click.option("--config", "config", callback=_json_arg,
                     help="handler options: a JSON object, or @file with one"),
        click.option("--timeout", default=3600.0, show_default=True, help="seconds to wait for the build"),
    ]):
        fn = opt(fn)
    return fn


def _label_map_id(state: State, pid: int, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    for m in state.client().label_maps(pid):
        if m["name"] == ref:
            return m["id"]
    raise LooplineError(404, "not_found", f"project {pid} has no label map named {ref!r}")


@dataset.command("get")
@_dataset_options
@click.option("--out", "dest", default=".", show_default=True, type=click.Path(file_okay=False),
              help="the folder <key>/ is placed in")
@_output_options
@pass_state
def dataset_get(state: State, project_ref, name, handler, label_map_ref, subset, config, timeout, dest) -> None:
    """Request a dataset, wait for its build, download and verify it; print the folder's path
    (its name is the dataset's key)."""
    client = state.client()
    pid = state.project_id(project_ref)
    built = client.build_dataset(pid, name, handler, _label_map_id(state, pid, label_map_ref), config, subset,
                                 wait_timeout=timeout, progress=state.progress)
    folder = client.fetch(built, dest, progress=state.progress)
    state.out({**built, "path": str(folder)}, str(folder))


@dataset.command("build")
@_dataset_options
@_output_options
@pass_state
def dataset_build(state: State, project_ref, name, handler, label_map_ref, subset, config, timeout) -> None:
    """Request a dataset and wait for its build (nothing is downloaded); print its key."""
    pid = state.project_id(project_ref)
    built = state.client().build_dataset(pid, name, handler, _label_map_id(state, pid, label_map_ref), config,
                                         subset, wait_timeout=timeout, progress=state.progress)
    state.out(built, built["key"])


@dataset.command("list")
@project_option
@click.option("--all-projects", is_flag=True, help="datasets of every project of yours")
@_output_options
@pass_state
def dataset_list(state: State, project_ref, all_projects) -> None:
    pid = None if all_projects else state.project_id(project_ref)
    rows = list(state.client().datasets(pid))
    state.out(rows, _table([{**d, "key": d["key"][:16]} for d in rows],
                           ["key", "name", "handler", "label_map_id", "status", "size_bytes"]))


@dataset.command("show")
@click.argument("key")
@_output_options
@pass_state
def dataset_show(state: State, key) -> None:
    d = state.client().dataset(key)
    state.out(d, f"{d['key']} {d['name']} {d['handler']} {d['status']} records {d.get('manifest', {}).get('records')}")


# --- checkpoints, training -----------------------------------------------------------------------
@cli.group()
def checkpoint() -> None:
    """The model tree: roots, forks, weights."""


def _ck_line(ck: dict) -> str:
    metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in (ck.get("metrics") or {}).items() if not isinstance(v, (dict, list)))
    return (f"checkpoint {ck['id']} {ck.get('name') or ''} ({ck['architecture']}) {ck['status']}"
            + (f", {ck['epochs_done']} epochs" if ck.get("epochs_done") else "") + (f": {metrics}" if metrics else ""))


@checkpoint.command("list")
@project_option
@_output_options
@pass_state
def checkpoint_list(state: State, project_ref) -> None:
    rows = list(state.client().checkpoints(state.project_id(project_ref)))
    state.out(rows, _table(rows, ["id", "name", "architecture", "status", "parent_id", "epochs_done", "dataset_key"]))


@checkpoint.command("show")
@click.argument("checkpoint_id", type=int)
@project_option
@_output_options
@pass_state
def checkpoint_show(state: State, checkpoint_id, project_ref) -> None:
    ck = state.client().checkpoint(state.project_id(project_ref), checkpoint_id)
    state.out(ck, _ck_line(ck) + "".join(f"\n  {_epoch_line(e)}" for e in ck.get("curve") or []))


@checkpoint.command("root")
@click.option("--architecture", required=True, help="see `GET /api/architectures`")
@click.option("--label-map", "label_map_ref", required=True, help="label map id or name")
@click.option("--name")
@click.option("--input-size", type=int)
@click.option("--seed", type=int)
@project_option
@_output_options
@pass_state
def checkpoint_root(state: State, architecture, label_map_ref, name, input_size, seed, project_ref) -> None:
    """A root with fresh weights."""
    pid = state.project_id(project_ref)
    ck = state.client().create_checkpoint(pid, architecture, _label_map_id(state, pid, label_map_ref), name,
                                          input_size, seed)
    state.out(ck, _ck_line(ck))


@checkpoint.command("fork")
@click.argument("checkpoint_id", type=int)
@click.option("--name")
@project_option
@_output_options
@pass_state
def checkpoint_fork(state: State, checkpoint_id, name, project_ref) -> None:
    ck = state.client().fork(state.project_id(project_ref), checkpoint_id, name)
    state.out(ck, _ck_line(ck))


@checkpoint.command("weights")
@click.argument("checkpoint_id", type=int)
@click.option("-o", "--out", default=".", show_default=True, type=click.Path(), help="file or folder")
@project_option
@_output_options
@pass_state
def checkpoint_weights(state: State, checkpoint_id, out, project_ref) -> None:
    """Download the checkpoint's `.keras` file."""
    path = state.client().download_weights(state.project_id(project_ref), checkpoint_id, out, state.progress)
    state.out({"path": str(path)}, str(path))


def _epoch_line(entry: dict) -> str:
    figures = "  ".join(f"{k} {v:.4g}" for k, v in entry.items()
                        if k not in ("epoch", "seconds", "samples_per_s") and isinstance(v, (int, float)))
    return f"epoch {entry.get('epoch')}: {figures}"


@cli.command()
@click.option("--dataset", "dataset_key", required=True, help="the dataset's key (`lloop dataset build`)")
@click.option("--checkpoint", "checkpoint_id", type=int, help="train this fresh (or failed) checkpoint")
@click.option("--from", "parent_id", type=int, help="fork this checkpoint and train the fork")
@click.option("--architecture", help="a new root of this architecture (default: the one that trains on the "
                                     "dataset's handler)")
@click.option("--name", help="name of the new root or fork")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--patience", type=int, help="early stopping after this many epochs without improvement")
@click.option("--reinit-head", is_flag=True, help="a new class head (the dataset's classes differ)")
@click.option("--seed", type=int)
@click.option("--no-wait", is_flag=True, help="answer once the run is queued")
@click.option("--timeout", default=7 * 86400.0, help="seconds to follow the run")
@project_option
@_output_options
@pass_state
def train(state: State, dataset_key, checkpoint_id, parent_id, architecture, name, epochs, batch_size,
          learning_rate, patience, reinit_head, seed, no_wait, timeout, project_ref) -> None:
    """Train on a dataset and follow the curve: a fresh root (default), a fork of --from, or --checkpoint."""
    if sum(x is not None for x in (checkpoint_id, parent_id, architecture)) > 1:
        raise click.UsageError("give one of --checkpoint, --from and --architecture")
    client = state.client()
    pid = state.project_id(project_ref)
    if parent_id is not None:
        checkpoint_id = client.fork(pid, parent_id, name)["id"]
    elif checkpoint_id is None:
        ds = client.dataset(dataset_key)
        if architecture is None:
            handler = ds["handler"].split("@")[0] + "@"
            fits = [a["name"] for a in client.architectures() if any(
                h == handler or h.startswith(handler) or handler.startswith(h) for h in a.get("handlers", []))]
            if not fits:
                raise LooplineError(400, "no_architecture", f"no architecture trains on {ds['handler']} datasets; "
                                                            f"pass --architecture")
            architecture = fits[0]
        size = (ds.get("config") or {}).get("size")  # a root takes the dataset's input size
        checkpoint_id = client.create_checkpoint(pid, architecture, ds["label_map_id"], name,
                                                 input_size=size if isinstance(size, int) else None)["id"]
    state.note(f"training checkpoint {checkpoint_id} on {dataset_key[:16]}")
    shown: set = set()

    def on_event(job: dict) -> None:
        details = job.get("details") or {}
        curve = list(details.get("curve") or [])
        if details.get("epoch_summary"):
            curve.append(details["epoch_summary"])
        for entry in curve:
            if entry.get("epoch") not in shown:
                shown.add(entry.get("epoch"))
                state.note(_epoch_line(entry))

    ck = client.train(pid, checkpoint_id, dataset_key, epochs=epochs, batch_size=batch_size,
                      learning_rate=learning_rate, early_stopping={"patience": patience} if patience else None,
                      reinit_head=reinit_head or None, seed=seed, wait=not no_wait, timeout=timeout,
                      on_event=on_event, progress=state.progress)
    state.out(ck, _ck_line(ck) if not no_wait else f"checkpoint {ck['id']} {ck['status']} (job {ck.get('job_id')})")


# --- deployments, suggestions, pipelines ---------------------------------------------------------
def _dep_line(d: dict) -> str:
    diff = f", max |ONNX - Keras| {d['max_abs_diff']:.2g}" if d.get("max_abs_diff") is not None else ""
    return (f"deployment {d['id']} of checkpoint {d['checkpoint_id']} ({d.get('task')}) {d['status']}"
            + (" active" if d.get("active") else "") + diff)


@cli.command()
@click.argument("checkpoint_id", type=int)
@click.option("--activate/--no-activate", default=True, show_default=True, help="make it the active one")
@click.option("--no-wait", is_flag=True, help="answer once the deployment job is queued")
@project_option
@_output_options
@pass_state
def deploy(state: State, checkpoint_id, activate, no_wait, project_ref) -> None:
    """Export a trained checkpoint to ONNX, check it against Keras and make it the active model."""
    dep = state.client().deploy(state.project_id(project_ref), checkpoint_id, activate, wait=not no_wait,
                                progress=state.progress)
    state.out(dep, _dep_line(dep))


@cli.group()
def deployment() -> None:
    """Deployments: list, activate (roll back)."""


@deployment.command("list")
@project_option
@_output_options
@pass_state
def deployment_list(state: State, project_ref) -> None:
    rows = list(state.client().deployments(state.project_id(project_ref)))
    state.out(rows, _table(rows, ["id", "checkpoint_id", "task", "status", "active", "max_abs_diff"]))


@deployment.command("activate")
@click.argument("deployment_id", type=int)
@project_option
@_output_options
@pass_state
def deployment_activate(state: State, deployment_id, project_ref) -> None:
    dep = state.client().activate(state.project_id(project_ref), deployment_id)
    state.out(dep, _dep_line(dep))


@cli.command()
@click.argument("image_id", type=int)
@click.option("--region", nargs=4, type=float, metavar="X Y W H", help="the rough box, pixels")
@click.option("--point", nargs=2, type=float, metavar="X Y", help="a point on the object")
@project_option
@_output_options
@pass_state
def suggest(state: State, image_id, region, point, project_ref) -> None:
    """Ask the active suggester for the box around a rough region (or a point) of an image."""
    if bool(region) == bool(point):
        raise click.UsageError("give --region X Y W H or --point X Y")
    got = state.client().suggest(state.project_id(project_ref), image_id, region=region or None, point=point or None)
    a = got["annotation"]
    state.out(got, f"box {a['x']:.1f} {a['y']:.1f} {a['w']:.1f} {a['h']:.1f} class {got.get('class_name')} "
                   f"score {a.get('score') or 0:.3f} (annotation {a['id']}, revision {got['revision']}, "
                   f"{(got.get('timings') or {}).get('total', 0):.1f} ms)")


@cli.group()
def pipeline() -> None:
    """Inference pipelines: download → preprocess → classify | suggest."""


@pipeline.command("list")
@_output_options
@pass_state
def pipeline_list(state: State) -> None:
    got = state.client().pipelines()
    state.out(got, "\n".join(f"{k}: {' → '.join(v) if isinstance(v, list) else v}"
                             for k, v in (got.get("pipelines") or {}).items()))


@pipeline.command("run")
@click.argument("name")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--url", "urls", multiple=True, help="an image URL (repeat for more)")
@click.option("--then", "then", multiple=True, help="a stage to run after NAME (repeat)")
@click.option("--region", "regions", nargs=4, type=float, multiple=True, metavar="X Y W H",
              help="the rough box of the next item (repeat, in item order)")
@project_option
@_output_options
@pass_state
def pipeline_run(state: State, name, files, urls, then, regions, project_ref) -> None:
    """Run pipeline (or stage) NAME on image FILES or --url addresses."""
    if bool(files) == bool(urls):
        raise click.UsageError("give image files or --url addresses (not both)")
    got = state.client().run_pipeline(name, state.project_id(project_ref), urls=urls, files=files,
                                      regions=list(regions) or None, then=then)
    lines = []
    for i, item in enumerate(got.get("items", [])):
        label = (files or urls)[i] if i < len(files or urls) else str(i)
        lines.append(f"{label}: " + (json.dumps(item["result"]) if "result" in item and item["result"] is not None
                                    else f"error {item.get('error')}"))
    state.out(got, "\n".join(lines))


@cli.command()
@click.option("--checkpoint", "checkpoint_id", type=int, help="a detector checkpoint")
@click.option("--deployment", "deployment_id", type=int, help="a ready detection deployment")
@click.option("--label-map", "label_map_ref", help="score on this map's labelled images (id or name)")
@click.option("--subset", type=click.Choice(["all", "failed"]))
@click.option("--image", "image_ids", type=int, multiple=True, help="score on these images (repeat)")
@click.option("--no-wait", is_flag=True)
@project_option
@_output_options
@pass_state
def evaluate(state: State, checkpoint_id, deployment_id, label_map_ref, subset, image_ids, no_wait,
             project_ref) -> None:
    """Score a detector (COCO mAP) on labelled images."""
    if (checkpoint_id is None) == (deployment_id is None):
        raise click.UsageError("give --checkpoint or --deployment")
    pid = state.project_id(project_ref)
    ev = state.client().evaluate(pid, checkpoint_id=checkpoint_id, deployment_id=deployment_id,
                                 label_map_id=_label_map_id(state, pid, label_map_ref) if label_map_ref else None,
                                 subset=subset, image_ids=image_ids or None, wait=not no_wait,
                                 progress=state.progress)
    metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in (ev.get("metrics") or {}).items() if not isinstance(v, (dict, list)))
    state.out(ev, f"evaluation {ev['id']} {ev.get('status')}" + (f": {metrics}" if metrics else ""))


@cli.command()
@click.option("--image", "image_ids", type=int, multiple=True, help="these images (repeat)")
@click.option("--ingest-job", "ingest_job_id", help="the images an ingest job added")
@click.option("--unannotated", is_flag=True, help="every image without a box")
@click.option("--threshold", type=float, help="the score a detection needs (default: the project's)")
@click.option("--no-wait", is_flag=True)
@project_option
@_output_options
@pass_state
def preannotate(state: State, image_ids, ingest_job_id, unannotated, threshold, no_wait, project_ref) -> None:
    """Store the active detector's detections on images as proposed boxes."""
    if sum(bool(x) for x in (image_ids, ingest_job_id, unannotated)) != 1:
        raise click.UsageError("give one of --image, --ingest-job and --unannotated")
    job = state.client().preannotate(state.project_id(project_ref), image_ids=image_ids or None,
                                     ingest_job_id=ingest_job_id, unannotated=unannotated or None,
                                     threshold=threshold, wait=not no_wait, progress=state.progress)
    state.out(job, _job_line(job) + (f"\n  result: {json.dumps(job['result'])[:300]}" if job.get("result") else ""))


# --- jobs ----------------------------------------------------------------------------------------
@cli.group()
def jobs() -> None:
    """Jobs: list, show, watch live, wait, cancel, retry."""


def _job_line(j: dict) -> str:
    pct = f"{100 * (j.get('progress') or 0):3.0f}%"
    return f"{j['id']}  {j['kind']:<16} {j.get('queue') or '':<12} {j['status']:<9} {pct}  {j.get('message') or ''}"


@jobs.command("list")
@click.option("--status")
@click.option("--kind")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--all-projects", is_flag=True, help="jobs of every project of yours")
@project_option
@_output_options
@pass_state
def jobs_list(state: State, status, kind, limit, all_projects, project_ref) -> None:
    pid = None if all_projects else state.project_id(project_ref)
    rows = list(state.client().jobs(pid, kind=kind, status=status, limit=limit))
    state.out(rows, "\n".join(map(_job_line, rows)) or "(none)")


@jobs.command("show")
@click.argument("job_id")
@_output_options
@pass_state
def jobs_show(state: State, job_id) -> None:
    j = state.client().job(job_id)
    state.out(j, _job_line(j) + (f"\n  error: {j['error']}" if j.get("error") else "")
              + (f"\n  result: {json.dumps(j['result'])[:500]}" if j.get("result") else ""))


def _ended(state: State, job: dict) -> None:
    if job["status"] != "succeeded":
        state.out(job, _job_line(job))
        raise JobFailed(f"job {job['id']} {job['status']}: {job.get('error') or job.get('message')}", job)
    state.out(job, _job_line(job))


@jobs.command("wait")
@click.argument("job_id")
@click.option("--timeout", default=86400.0, show_default=True)
@_output_options
@pass_state
def jobs_wait(state: State, job_id, timeout) -> None:
    """Wait for a job to end (exit status 7 when it failed or was cancelled)."""
    _ended(state, state.client().wait_job(job_id, timeout, progress=state.progress))


@jobs.command("watch")
@click.argument("job_id", required=False)
@click.option("--all-projects", is_flag=True, help="the jobs of every project of yours (polling)")
@project_option
@_output_options
@pass_state
def jobs_watch(state: State, job_id, all_projects, project_ref) -> None:
    """Follow one job live until it ends, or (without JOB_ID) every job of a project until Ctrl-C; one line
    per change (one JSON object per line with --json)."""
    client = state.client()

    def line(j: dict) -> None:
        click.echo(json.dumps(j, default=str) if state.as_json else _job_line(j))

    if job_id:
        last = None
        for last in client.follow_job(job_id):
            line(last)
        if last and last["status"] != "succeeded":
            raise JobFailed(f"job {job_id} {last['status']}: {last.get('error') or last.get('message')}", last)
        return
    pid = None if all_projects else state.project_id(project_ref)
    state.note(f"watching the jobs of {'all your projects' if pid is None else f'project {pid}'} (Ctrl-C stops)")
    for j in client.watch(pid):
        line(j)


@jobs.command("cancel")
@click.argument("job_id")
@_output_options
@pass_state
def jobs_cancel(state: State, job_id) -> None:
    j = state.client().cancel_job(job_id)
    state.out(j, _job_line(j) + (" (cancel requested)" if j.get("cancel_requested") else ""))


@jobs.command("retry")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="and wait for the new job")
@_output_options
@pass_state
def jobs_retry(state: State, job_id, wait) -> None:
    """A new job with the same request as one that ended failed or cancelled."""
    j = state.client().retry_job(job_id)
    if wait:
        j = state.client().wait_job(j["id"], progress=state.progress)
        _ended(state, j)
    else:
        state.out(j, _job_line(j))


# --- running -------------------------------------------------------------------------------------
def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status (EXIT_CODES), an error said once on stderr."""
    try:
        result = cli.main(args=argv, prog_name="lloop", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Abort:
        click.echo("lloop: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("lloop: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except LooplineError as exc:
        click.echo(f"lloop: error: {exc.detail()}", err=True)
        return exit_code_for(exc)
    except (JobFailed, TimeoutError, ChecksumMismatch, UnsafeArchive, ConfigError) as exc:
        click.echo(f"lloop: error: {exc}", err=True)
        return exit_code_for(exc)
    except OSError as exc:  # a local file: unreadable, missing, a full disk
        click.echo(f"lloop: error: {exc}", err=True)
        return 2 if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)) else 1


def main() -> None:
    sys.exit(run())
