"""Extensions are created unbound here and bound to an app in `create_app` (no app globals)."""

from __future__ import annotations

from flask import Flask, current_app
from flask_smorest import Api
from flask_socketio import SocketIO
from sqlalchemy.orm import Session, scoped_session

from workers.runtime import Runtime


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


db = Database()
rest = Api()
socketio = SocketIO()
