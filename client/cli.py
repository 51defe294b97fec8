"""`loopline dataset get`: one command that leaves a verified dataset folder and prints its path.

Only the path goes to stdout, so scripts can do `DATA=$(loopline dataset get ...)`; progress and errors
go to stderr, an error as one line with exit status 1. The SDK is imported when the command runs, so
the server's `loopline` stays quick to start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

DEFAULT_URL = "http://127.0.0.1:8000"


def _default_token() -> str | None:
    """LOOPLINE_TOKEN, else the admin token `loopline up` keeps in the data folder."""
    if os.environ.get("LOOPLINE_TOKEN"):
        return os.environ["LOOPLINE_TOKEN"]
    path = Path(os.environ.get("LOOPLINE_DATA_DIR", "var")) / "admin.token"
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _config(text: str | None) -> dict:
    if not text:
        return {}
    source = "--config"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot read the config file {source}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.ClickException(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise click.ClickException(f"{source} must be a JSON object, like '{{\"variations\": 2}}'")
    return value


@click.group("dataset")
def dataset() -> None:
    """Datasets: request one and download it, verified."""


@dataset.command("get")
@click.option("--url", default=lambda: os.environ.get("LOOPLINE_URL", DEFAULT_URL),
              show_default="$LOOPLINE_URL or " + DEFAULT_URL, help="the API")
@click.option("--token", default=_default_token, show_default="$LOOPLINE_TOKEN or var/admin.token",
              help="API token")
@click.option("--project", "project_id", type=int, required=True, help="project id")
@click.option("--name", required=True, help="dataset name")
@click.option("--handler", default="detection@1", show_default=True, help="handler@version")
@click.option("--label-map", "label_map_id", type=int, required=True, help="label map id")
@click.option("--subset", type=click.Choice(["all", "failed"]), default="all", show_default=True)
@click.option("--config", "config_text", help="handler config: a JSON object, or @file with one")
@click.option("--out", "dest", default=".", show_default=True, type=click.Path(file_okay=False),
              help="the folder <key>/ is placed in")
@click.option("--timeout", default=3600.0, show_default=True, help="seconds to wait for the build")
@click.option("--quiet", is_flag=True, help="no progress on stderr")
def get(url, token, project_id, name, handler, label_map_id, subset, config_text, dest, timeout, quiet) -> None:
    """Request a dataset, wait for its build, download and verify it; print the folder's path."""
    import requests

    from client.sdk import ChecksumMismatch, DatasetBuildFailed, Loopline, LooplineError, UnsafeArchive

    if not token:
        raise click.ClickException("no token: pass --token, set LOOPLINE_TOKEN, or run `loopline up` "
                                   "(which keeps one in var/admin.token)")
    config = _config(config_text)
    try:
        folder = Loopline(url, token).request_dataset(
            project_id, name, handler, label_map_id, config=config, subset=subset, dest=dest,
            wait_timeout=timeout, progress=not quiet)
    except LooplineError as exc:
        unsaid = {k: v for k, v in exc.fields.items() if k not in exc.message}  # the message may list them
        detail = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in unsaid.items())
        raise click.ClickException(f"{exc}" + (f" ({detail})" if detail else "")) from None
    except requests.ConnectionError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    except (DatasetBuildFailed, ChecksumMismatch, UnsafeArchive, TimeoutError, requests.RequestException,
            OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(folder))
