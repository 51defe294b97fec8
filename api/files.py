"""Serving stored blobs: ETag, conditional GET (304) and byte ranges (206) for resumable downloads."""

from __future__ import annotations

from flask import request, send_file

from api.errors import ApiError
from api.extensions import runtime


def send_blob(key: str, *, mimetype: str, name: str, etag: str, cache_control: str, gone: str):
    """Stream blob `key`; `gone` is the 410 message when the catalog names a file that is missing."""
    blobs = runtime().blobs
    try:
        size = blobs.size(key)
        fh = blobs.open(key)
    except KeyError:
        raise ApiError(410, gone) from None
    response = send_file(fh, mimetype=mimetype, download_name=name, conditional=False, etag=False)
    response.content_length = size
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    return response.make_conditional(request.environ, accept_ranges=True, complete_length=size)


def download_doc(*mimetypes: str, description: str) -> dict:
    """`@bp.doc(**download_doc(...))` for a route answered by `send_blob`: the file's media types, a byte
    range (206) and a matching `If-None-Match` (304)."""
    content = {m: {"schema": {"type": "string", "format": "binary"}} for m in mimetypes}
    return {"responses": {
        "200": {"description": description, "content": content},
        "206": {"description": "the byte range asked for with `Range`", "content": content},
        "304": {"description": "not modified: `If-None-Match` names the current ETag"},
    }}
