"""Every error leaves the API as JSON: {"error": {"status", "code", "message", "fields"?}}.

`fields` maps each bad input field to what is wrong with it, so a client can show it next to the field.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from marshmallow import Schema
from marshmallow import fields as ma_fields
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from services.errors import CommandError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests",
    500: "internal_error", 503: "unavailable",
}


class ErrorDetailSchema(Schema):
    status = ma_fields.Integer(required=True, metadata={"description": "the HTTP status"})
    code = ma_fields.String(required=True, metadata={"description": "what kind of error, for programs"})
    message = ma_fields.String(required=True, metadata={"description": "what was wrong, for people"})
    fields_ = ma_fields.Dict(data_key="fields", keys=ma_fields.String(),
                             metadata={"description": "each bad input field (`items.3.name`) and its problems"})
    current_revision = ma_fields.Integer(metadata={"description": "stale_revision (409): the image's revision now"})
    items = ma_fields.List(ma_fields.Dict(), metadata={"description": "a pipeline run no item of which could be "
                                                                     "processed (422): each item's error"})


class ErrorSchema(Schema):
    """The body of every 4xx and 5xx answer (registered as the document's error schema)."""

    error = ma_fields.Nested(ErrorDetailSchema, required=True)


class ApiError(CommandError):
    """A view's own refusal; commands raise `services.errors.CommandError`, answered the same way."""

    def __init__(self, status: int, message: str, *, code: str | None = None, fields: dict | None = None, **extra):
        super().__init__(status, message, code=code or CODES.get(status, "error"), fields=fields, **extra)


def error_response(status: int, message: str, *, code: str | None = None, fields: dict | None = None, **extra):
    body = {"status": status, "code": code or CODES.get(status, "error"), "message": message, **extra}
    if fields:
        body["fields"] = _text_keys(fields)
    return jsonify(error=body), status


def _text_keys(value):
    """marshmallow keys list items by position (int) next to names: JSON keys are text (and sortable)."""
    if isinstance(value, dict):
        return {str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text_keys(v) for v in value]
    return value


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
    @app.errorhandler(CommandError)
    def _refused(e: CommandError):
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
        body, status = error_response(e.code or 500, message)
        allow = dict(e.get_headers()).get("Allow")
        if allow:  # a 405 lists the methods the resource has (RFC 9110)
            body.headers["Allow"] = allow
        return body, status

    @app.errorhandler(IntegrityError)
    def _integrity(e: IntegrityError):
        log.info("integrity error: %s", e.orig)
        return error_response(409, "conflicts with existing data (a name or reference is already taken)")

    @app.errorhandler(OperationalError)
    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    @app.errorhandler(BrokerError)
    def _unavailable(e: Exception):
        """The catalog (or, for the few routes that need it at once, Redis) cannot be reached: nothing was
        accepted, and the client may simply try again."""
        log.warning("service unavailable: %s: %s", type(e).__name__, e)
        what = "the catalog" if isinstance(e, OperationalError) else "the message broker"
        body, status = error_response(503, f"{what} is unavailable right now; nothing was written — retry shortly")
        body.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return body, status

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal error; the server log has the details")
