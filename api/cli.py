"""The `loopline` command: migrations, users and tokens, worker pools, the reaper, the collector, and `up`."""

from __future__ import annotations

import os
import sys

import click

from store.settings import load_settings
from services.queues import Queue


@click.group()
def main() -> None:
    """loopline: one job system for the human-in-the-loop computer-vision cycle. These commands run a
    server on this machine; `lloop` (the loopline-client distribution) talks to one from anywhere."""


# --- database ----------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Catalog migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the catalog up to REVISION (default: the newest)."""
    from store import migrate

    settings = load_settings()
    settings.ensure_dirs()
    migrate.upgrade(settings.sqlalchemy_url, revision)
    click.echo(f"catalog at {revision} ({_safe_url(settings.sqlalchemy_url)})")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the catalog down to REVISION ('base' removes every table)."""
    from store import migrate

    settings = load_settings()
    migrate.downgrade(settings.sqlalchemy_url, revision)
    click.echo(f"catalog at {revision}")


@db.command("current")
def db_current() -> None:
    from store import migrate
    from store.db import make_engine

    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    click.echo(f"current {migrate.current_revision(engine)}, newest {migrate.head_revision()}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- users and tokens --------------------------------------------------------------------------
def _sessions():
    from store.db import make_engine, make_session_factory

    return make_session_factory(make_engine(load_settings().sqlalchemy_url))


@main.group()
def user() -> None:
    """Users."""


@user.command("create")
@click.argument("name")
@click.option("--superuser", is_flag=True, help="sees and administers every project")
def user_create(name: str, superuser: bool) -> None:
    """Create user NAME and print a token for it (shown only this once)."""
    from store.accounts import create_user, issue_token

    with _sessions()() as session:
        try:
            new = create_user(session, name, superuser=superuser)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        token = issue_token(session, new)
        session.commit()
    click.echo(token)


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("user_name")
@click.option("--name", "label", default="default", help="a label to tell tokens apart")
def token_create(user_name: str, label: str) -> None:
    """Print a new token for USER_NAME (shown only this once)."""
    from sqlalchemy import select

    from store.accounts import issue_token
    from store.schema import User

    with _sessions()() as session:
        found = session.scalar(select(User).where(User.name == user_name))
        if found is None:
            raise click.ClickException(f"no user {user_name!r}; create one with `loopline user create {user_name}`")
        value = issue_token(session, found, label)
        session.commit()
    click.echo(value)


@token.command("revoke")
@click.argument("prefix")
def token_revoke(prefix: str) -> None:
    """Revoke the token that starts with PREFIX (its first 10 characters are enough)."""
    from sqlalchemy import select

    from api.live_access import disconnect_token
    from store.schema import ApiToken
    from store.schema.base import utcnow
    from services.runtime import Runtime

    with _sessions()() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.prefix == prefix[:10])).all()
        if len(rows) != 1:
            raise click.ClickException(f"{len(rows)} tokens match {prefix!r}")
        rows[0].revoked_at = utcnow()
        token_id = rows[0].id
        session.commit()
    disconnect_token(Runtime(load_settings()), token_id)  # its open Socket.IO connections, in every API process
    click.echo("revoked")


# --- processes ---------------------------------------------------------------------------------
@main.command()
@click.argument("queue", type=click.Choice([q.value for q in Queue]))
@click.option("-c", "--concurrency", type=int, help="processes or threads, as the pool runs (default: the queue table's)")
@click.option("--loglevel", default="INFO")
@click.option("-I", "--include", multiple=True, help="extra task modules to import")
@click.option("--name", help="node name before the @ (default: the queue's name)")
def worker(queue: str, concurrency: int | None, loglevel: str, include: tuple[str, ...], name: str | None) -> None:
    """Run a worker pool for QUEUE with the flags the queue table prescribes."""
    from services.queues import worker_argv

    argv = worker_argv(Queue(queue), concurrency=concurrency, loglevel=loglevel, name=name)
    for module in include:
        argv += ["-I", module]
    os.execvp(sys.executable, [sys.executable, "-m", "celery", *argv])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--threads", default=64, show_default=True, help="per process; each Socket.IO connection holds one")
@click.option("--workers", type=int, help="processes (default: one per CPU, at most 4)")
def serve(host: str, port: int, threads: int, workers: int | None) -> None:
    """Run the API with Socket.IO under gunicorn (threaded workers)."""
    from api.local import gunicorn_argv

    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", *gunicorn_argv(host, port, threads, workers)])


@main.command()
@click.option("--interval", default=5.0, show_default=True, help="seconds between passes")
@click.option("--once", is_flag=True, help="one pass, then exit")
def reaper(interval: float, once: bool) -> None:
    """Keep every accepted job moving: requeue jobs whose worker died, send again the queued jobs whose
    message the broker lost or never got (the dispatcher). Survives broker and catalog outages."""
    from workers.celery_app import create_celery
    from workers.sweeper import Sweeper

    settings = load_settings()
    sweeper = Sweeper(settings, create_celery(settings, include_tasks=False), echo=click.echo)
    if once:
        sweeper.sweep()
        return
    sweeper.run_forever(interval)


@main.command()
@click.option("--grace", type=click.FloatRange(min=0), help="seconds [default: LOOPLINE_BLOB_GRACE_SECONDS]")
def collect(grace: float | None) -> None:
    """Delete now what no catalog row names: blobs and temp files older than the grace, staging and
    scratch folders of jobs that ended (the reaper's loop does this every LOOPLINE_COLLECT_INTERVAL s)."""
    from services.collector import collect as collect_pass
    from services.runtime import Runtime

    click.echo(collect_pass(Runtime(load_settings()), grace=grace).summary())


@main.command()
def services() -> None:
    """Make sure the local services answer: start Redis if the configured local one does not."""
    from api.local import ensure_redis

    settings = load_settings()
    settings.ensure_dirs()
    ensure_redis(settings)
    click.echo(f"redis answers at {settings.redis_url}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--concurrency", type=int, help="processes (prefork) or threads (threads pool) per pool (default: the queue table's)")
@click.option("--flower", is_flag=True, help="also run Flower (`celery -A workers flower`), which shows every job's task")
@click.option("--flower-port", default=5555, show_default=True)
@click.option("--flower-open-api", is_flag=True,
              help="answer Flower's HTTP API (/api/tasks, ...) without authentication (FLOWER_UNAUTHENTICATED_API)")
def up(host: str, port: int, concurrency: int | None, flower: bool, flower_port: int, flower_open_api: bool) -> None:
    """Everything on this machine: Redis (started if none answers), migrations, an admin token,
    the API with Socket.IO, one worker pool per queue and the reaper (and Flower with --flower).
    Ctrl-C stops it all."""
    from api.local import run_local

    run_local(load_settings(), host=host, port=port, concurrency=concurrency, flower=flower or flower_open_api,
              flower_port=flower_port, flower_open_api=flower_open_api)


if __name__ == "__main__":
    main()
