"""The Flask API: `create_app(config)` binds the unbound extensions of `api.extensions` to one app."""

from __future__ import annotations

from functools import partial, wraps

from flask import Flask, request

from api.errors import ApiError


def create_app(config=None) -> Flask:
    """`config` is a `store.settings.Settings`, or None to read the `LOOPLINE_*` environment."""
    from api import (
        boxes, checkpoints, datasets, deployments, images, interop, jobs, labels, labelstudio, metrics, pipelines,
        projects, queries, signin, suggestions, system,
    )
    from api.auth import init_auth
    from api.errors import register_error_handlers
    from api.extensions import db, rest, socketio
    from api.live_access import AccessManager
    from api.realtime import forbidden_rooms, register_socketio_handlers
    from api.web import register_web
    from store.settings import load_settings
    from workers.celery_app import create_celery
    from services.runtime import Runtime

    settings = config or load_settings()
    app = Flask(__name__, static_folder=None)  # the dashboard's files: `api.web`
    app.config.update(
        LOOPLINE=settings,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
        API_TITLE="loopline",
        API_VERSION="0.1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
            "info": {"description": "loopline: ingest, annotate, build datasets, train, deploy, serve, review."},
        },
    )
    runtime = Runtime(settings)
    app.extensions["loopline.runtime"] = runtime
    app.extensions["celery"] = create_celery(settings, include_tasks=False)
    db.init_app(app, runtime)
    rest.init_app(app)
    for bp in (system.bp, projects.bp, labels.bp, images.bp, boxes.bp, queries.bp, interop.bp, datasets.bp,
               checkpoints.bp, deployments.bp, suggestions.bp, pipelines.bp, labelstudio.bp, jobs.bp,
               metrics.bp, signin.bp):
        rest.register_blueprint(bp)
    rest.register_blueprint(__import__("api.detection", fromlist=["bp"]).bp)  # evaluations, pre-annotation
    rest.register_blueprint(__import__("api.crops", fromlist=["bp"]).bp)  # class examples cut from images
    register_web(app)  # after the API's routes, which it leaves alone
    register_error_handlers(app)  # after rest.init_app: ours replace smorest's error format
    _requests_own_their_transaction(app, db)
    init_auth(app)
    _limit_json_bodies(app, settings.max_json_bytes)
    # Websocket only: a connection lives on one socket, so any number of API processes can serve it
    # without sticky sessions (long polling would need them); events reach every process via Redis,
    # and so do changes of access (`api.live_access`).
    manager = AccessManager(settings.redis_url, runtime.keys.socketio_channel, partial(forbidden_rooms, app))
    socketio.init_app(
        app, async_mode="threading", client_manager=manager,
        transports=["websocket"], cors_allowed_origins=[], logger=False, engineio_logger=False,
    )
    register_socketio_handlers()
    suggestions.register_socketio_suggestions(socketio)
    _subscribe_now(socketio)
    return app


def _requests_own_their_transaction(app: Flask, db) -> None:
    """Views and commands never commit: a request's unit of work commits once, after its view returned and
    before the answer leaves (so a conflict found at commit still answers 409, an unreachable catalog 503),
    and the messages and events it produced go out after that commit (`store.db.after_commit`). Any error
    rolls it all back when the app context ends."""

    def committing(view):
        @wraps(view)
        def run(*args, **kwargs):
            response = view(*args, **kwargs)
            db.session.commit()
            return response

        return run

    for endpoint, view in list(app.view_functions.items()):
        if not endpoint.startswith("web."):
            app.view_functions[endpoint] = committing(view)


def _subscribe_now(sio, timeout: float = 5.0) -> None:
    """python-socketio joins the Redis channel on a process's first connection, from a background
    thread; events published before that thread subscribes would be lost. Subscribe at start instead."""
    import time

    server = sio.server
    if not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pubsub = getattr(server.manager, "pubsub", None)
        if pubsub is not None and pubsub.subscribed:
            return
        time.sleep(0.01)


def _limit_json_bodies(app: Flask, max_json: int) -> None:
    from api.inputs import check_json_body

    @app.before_request
    def _json_only():
        if request.method in ("POST", "PUT", "PATCH") and request.path.startswith("/api/"):
            has_body = (request.content_length or 0) > 0 or request.headers.get("Transfer-Encoding")
            if has_body and not request.is_json and not request.mimetype.startswith("multipart/"):
                raise ApiError(415, f"send JSON (Content-Type: application/json), not {request.mimetype or 'nothing'}")
            if request.is_json:
                request.max_content_length = max_json
                check_json_body()  # nesting, Unicode and 64-bit integers, before any schema
