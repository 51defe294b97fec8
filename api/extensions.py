"""Extensions are created unbound here and bound to an app in `create_app` (no app globals)."""

from __future__ import annotations

from flask import Flask, current_app
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from flask_smorest import Api
from flask_socketio import SocketIO
from sqlalchemy.orm import Session, scoped_session

from api.errors import ErrorSchema
from services.runtime import Runtime


class Database:
    """One SQLAlchemy session per app context, from the process's Runtime."""

    def init_app(self, app: Flask, runtime: Runtime) -> None:
        from flask import globals as flask_globals

        sessions = scoped_session(runtime.sessions, scopefunc=lambda: id(flask_globals.app_ctx._get_current_object()))
        app.extensions["loopline.db"] = sessions

        @app.teardown_appcontext
        def _remove_session(_exc=None):
            sessions.remove()

    @property
    def session(self) -> Session:
        return current_app.extensions["loopline.db"]()


def runtime() -> Runtime:
    return current_app.extensions["loopline.runtime"]


def celery():
    return current_app.extensions["celery"]


class _Converter(OpenAPIConverter):
    def field2nullable(self, field, ret) -> dict:
        """A nullable nested schema is the schema or null; apispec's OpenAPI 3.0 form also allows any object."""
        attributes = super().field2nullable(field, ret)
        for option in attributes.get("anyOf", []):
            if option.get("nullable") and "$ref" not in option:
                option["enum"] = [None]
        return attributes


class _MarshmallowPlugin(MarshmallowPlugin):
    Converter = _Converter


class LooplineApi(Api):
    """flask-smorest documenting the API as it behaves: the error body `api.errors` sends on every
    operation, the bounded path converters of `api.inputs`, nullable nested schemas that mean null."""

    ERROR_SCHEMA = ErrorSchema

    def __init__(self, app=None, *, spec_kwargs=None, **kw):
        spec_kwargs = {"marshmallow_plugin": _MarshmallowPlugin(), **(spec_kwargs or {})}
        super().__init__(app, spec_kwargs=spec_kwargs, **kw)

    def init_app(self, app: Flask, *args, **kw) -> None:
        from api.inputs import register_converters

        super().init_app(app, *args, **kw)
        register_converters(app, self)  # before any blueprint adds a route


db = Database()
rest = LooplineApi()
socketio = SocketIO()
