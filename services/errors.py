"""What a command says when it refuses: one exception the API answers with its status, code and fields."""

from __future__ import annotations


class CommandError(Exception):
    """A refused command. `status` is how an HTTP caller sees it (400 bad input, 404 unknown, 409 conflict);
    `fields` maps each bad input field to its problems; `extra` adds keys to the error body (e.g. the
    image's current revision of a stale write)."""

    def __init__(self, status: int, message: str, *, code: str | None = None, fields: dict | None = None,
                 **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.fields, self.extra = status, message, code, fields, extra
