"""The files of a multipart upload, read from the request. Staging them and the ingest job that follows are
commands in `services/uploads.py`."""

from __future__ import annotations

from flask import request

from api.errors import ApiError
from api.inputs import clean_filename


def uploaded_files(field: str = "files", what: str = "images and zips", form: bool = False) -> list:
    """The files of multipart field `field`; 400 for other file fields, and for any text field unless the
    caller reads a `form` (with a Strict schema, which names unknown ones)."""
    if request.form and not form:
        unknown = sorted(request.form)
        raise ApiError(400, f"unknown multipart fields {unknown}; send {what} as {field!r}",
                       fields={k: ["unknown field"] for k in unknown})
    files = [f for f in request.files.getlist(field) if f is not None]
    for f in files:
        f.filename = clean_filename(f.filename)  # kept as metadata (job reports, checkpoint names) only
    unknown = sorted(set(request.files) - {field, "annotations"})
    if unknown:
        raise ApiError(400, f"unknown multipart fields {unknown}; send {what} as {field!r}",
                       fields={k: ["unknown field"] for k in unknown})
    return files
