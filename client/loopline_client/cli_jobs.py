"""`lloop jobs`: list, show, wait, watch, cancel and retry jobs."""

from __future__ import annotations

import json

import click

from loopline_client.cli_common import _output_options, pass_state, project_option, State
from loopline_client.errors import JobFailed


# --- jobs ----------------------------------------------------------------------------------------
@click.group()
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
