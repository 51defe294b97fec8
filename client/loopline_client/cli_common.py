"""What every `lloop` command shares: the exit statuses (EXIT_CODES, `exit_code_for`), the `State` the
group options make (client, project, output), the --json/-q/--project options, tables, JSON arguments
and label-map lookup."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from loopline_client import config
from loopline_client.errors import (ChecksumMismatch, ConfigError, JobFailed, LooplineError, UnsafeArchive)


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


def _label_map_id(state: State, pid: int, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    for m in state.client().label_maps(pid):
        if m["name"] == ref:
            return m["id"]
    raise LooplineError(404, "not_found", f"project {pid} has no label map named {ref!r}")
