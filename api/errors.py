"""Every error leaves the API as JSON: {"error": {"status", "code", "message", "fields"?}}.

`fields` maps each bad input field to what is wrong with it, so a client can show it next to the field.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests",
    500: "internal_error", 503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, fields: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.fields, self.extra = status, message, fields, extra
        self.code = code or CODES.get(status, "error")


def error_response(status: int, message: str, *, code: str | None = None, fields: dict | None = None, **extra):
    body = {"status": status, "code": code or CODES.get(status, "error"), "message": message, **extra}
    if fields:
        body["fields"] = fields
    return jsonify(error=body), status


def _flatten(messages: dict) -> dict:
    """webargs nests errors by location ({"json": {"name": [...]}}); clients want {"name": [...]}."""
    fields: dict = {}
    for location, errs in messages.items():
        if isinstance(errs, dict):
            for name, problems in errs.items():
                fields[name if location in ("json", "query", "view_args") else f"{location}.{name}"] = problems
        else:
            fields[location] = errs
    return fields


def _summary(fields: dict) -> str:
    parts = []
    for name, problems in fields.items():
        text = problems
        if isinstance(problems, list):
            text = " ".join((p if isinstance(p, str) else str(p)).rstrip(".") for p in problems)
        elif isinstance(problems, dict):
            text = "; ".join(f"{k}: {v}" for k, v in problems.items())
        parts.append(f"{name}: {text}" if name not in ("json", "_schema") else str(text))
    return "; ".join(parts)


def invalid_input(fields: dict) -> ApiError:
    """The 400 for a marshmallow error dict ({"field": ["problem"]}), shaped like every validation error."""
    return ApiError(400, "invalid input: " + _summary(fields), code="invalid_input", fields=fields)


def load_input(schema, body) -> dict:
    """`schema.load(body)`, or that 400: for bodies a view reads itself (JSON or multipart on one route)."""
    from marshmallow import ValidationError

    try:
        return schema.load(body)
    except ValidationError as exc:
        raise invalid_input(exc.messages) from None


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return error_response(e.status, e.message, code=e.code, fields=e.fields, **e.extra)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        data = getattr(e, "data", None) or {}
        messages = data.get("messages")
        if messages:
            err = invalid_input(_flatten(messages))
            return error_response(e.code or 400, err.message, code=err.code, fields=err.fields)
        message = data.get("message") or e.description or e.name
        if e.code == 413:
            message = "request body too large"
        return error_response(e.code or 500, message)

    @app.errorhandler(IntegrityError)
    def _integrity(e: IntegrityError):
        log.info("integrity error: %s", e.orig)
        return error_response(409, "conflicts with existing data (a name or reference is already taken)")

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal error; the server log has the details")
