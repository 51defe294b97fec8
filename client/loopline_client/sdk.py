"""`Loopline`: the whole human-in-the-loop cycle of one loopline server, over its REST API and Socket.IO.

Every method is one call (or a few) of the API and returns its decoded JSON, typed in
`loopline_client.types`; a refused call raises `LooplineError` with the API's status, code, message and
fields, no answer at all raises `Unreachable` (a `LooplineError` with status 0). Methods that start a job
return at once with the job, or with `wait=True` follow it to its end: over Socket.IO when it connects,
with polling every `poll_interval` seconds regardless (a socket that never connects or silently drops
only slows the wait down), and raise `JobFailed` when it failed or was cancelled.

Datasets reach the disk verified: the zip is resumed with `Range` + `If-Range` (a changed file restarts
it), checked against the server's SHA-256, unpacked beside the destination and renamed into place (a
reader never sees half a folder), and every file is checked against the manifest. A folder already there
that verifies is returned as it is.

The methods live in mixins by subject: `_http` (the wire), `_catalog` (projects, classes, label maps),
`_data` (images, boxes, COCO, datasets), `_models` (checkpoints to pre-annotation), `_jobs` (following
jobs), `_files` (downloads, uploads on disk); this module composes them and re-exports their helpers.
"""

from __future__ import annotations

import os

import requests

from loopline_client import types as t  # noqa: F401
from loopline_client._catalog import _Catalog
from loopline_client._data import _Data
from loopline_client._files import (_batches, _bytes_bar, _collect, _Files, _filename, _items,  # noqa: F401
                                    _Multipart, _safe_name, _sha256, _unpack, verify_folder)
from loopline_client._http import (_body, _error, _param, _reason, Box4, CHUNK, IMAGE_SUFFIXES, PAGE,  # noqa: F401
                                   PathLike, TERMINAL)
from loopline_client._jobs import _Jobs, _state  # noqa: F401
from loopline_client._models import _Models, _xywh  # noqa: F401
from loopline_client.errors import (ChecksumMismatch, DatasetBuildFailed, JobFailed, LooplineError,  # noqa: F401
                                    UnsafeArchive, Unreachable)


class Loopline(_Catalog, _Data, _Models, _Jobs, _Files):
    """A client for one API. `poll_interval`: seconds between job polls, which run even while
    Socket.IO is connected; `socketio_url` defaults to `url` (a proxy may serve it elsewhere)."""

    def __init__(self, url: str, token: str, *, timeout: float = 30, poll_interval: float = 3.0,
                 socketio_url: str | None = None):
        self.url = url.rstrip("/")
        self.token, self.timeout, self.poll_interval = token, timeout, poll_interval
        self.socketio_url = (socketio_url or self.url).rstrip("/")
        self.waited_with: str | None = None  # "socketio" or "polling": how the last wait listened
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "User-Agent": "loopline-client"})

    @classmethod
    def from_config(cls, **kw) -> Loopline:
        """The server and token `lloop login` saved (LOOPLINE_URL / LOOPLINE_TOKEN override them)."""
        from loopline_client import config

        saved = config.load()
        url = os.environ.get("LOOPLINE_URL") or saved.get("url")
        token = os.environ.get("LOOPLINE_TOKEN") or saved.get("token")
        if not url or not token:
            raise LooplineError(401, "not_logged_in", f"no server saved in {config.config_path()}: "
                                                      f"run `lloop login URL` or set LOOPLINE_URL and LOOPLINE_TOKEN")
        return cls(url, token, **kw)
