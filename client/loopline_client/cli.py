"""`lloop`: the loop from a terminal or a script, on top of the SDK.

`lloop login URL` checks the server and the token and keeps both in the user's config folder (0600);
then one command per step: `project`, `class`, `label-map`, `images upload`, `boxes`, `coco import|export`,
`dataset get|build`, `checkpoint`, `train`, `deploy`, `deployment`, `suggest`, `pipeline run`, `jobs
watch|wait|cancel|retry`. Long steps draw progress bars on stderr (`-q` turns them off); stdout carries
the answer only, as text or, with `--json`, one JSON document. An error is one line on stderr and an
exit status that says what failed (EXIT_CODES; `lloop --help` lists them).
"""

from __future__ import annotations

import sys

import click

from loopline_client import __version__, config
from loopline_client.cli_common import (_EPILOG, _json_arg, _label_map_id, _output_options,  # noqa: F401
                                        _table, EXIT_CODES, exit_code_for, pass_state, project_option, State)
from loopline_client.cli_catalog import (_use, class_, class_add, class_list, label_map, label_map_create,  # noqa: F401
                                         label_map_list, project, project_create, project_delete,
                                         project_list, project_show, project_use)
from loopline_client.cli_data import (_dataset_options, _upload_report, boxes, boxes_add, boxes_list, coco,  # noqa: F401
                                      coco_export, coco_import, dataset, dataset_build, dataset_get,
                                      dataset_list, dataset_show, images, images_list, images_upload)
from loopline_client.cli_models import (_ck_line, _dep_line, _epoch_line, checkpoint, checkpoint_fork,  # noqa: F401
                                        checkpoint_list, checkpoint_root, checkpoint_show, checkpoint_weights,
                                        deploy, deployment, deployment_activate, deployment_list, evaluate,
                                        pipeline, pipeline_list, pipeline_run, preannotate, suggest, train)
from loopline_client.cli_jobs import (_ended, _job_line, jobs, jobs_cancel, jobs_list, jobs_retry, jobs_show,  # noqa: F401
                                      jobs_wait, jobs_watch)
from loopline_client.errors import (ChecksumMismatch, ConfigError, JobFailed, LooplineError, UnsafeArchive,
                                    Unreachable)


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


cli.add_command(project)
cli.add_command(class_)
cli.add_command(label_map)
cli.add_command(images)
cli.add_command(boxes)
cli.add_command(coco)
cli.add_command(dataset)
cli.add_command(checkpoint)
cli.add_command(train)
cli.add_command(deploy)
cli.add_command(deployment)
cli.add_command(suggest)
cli.add_command(pipeline)
cli.add_command(evaluate)
cli.add_command(preannotate)
cli.add_command(jobs)


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
