"""What the API accepts, in one place: the bounds every input shares and the checks that run before any
schema sees a request.

- Integers are bounded by what the catalog stores: ids (and revisions) are INTEGER columns, 32-bit in
  PostgreSQL, so `ID_MAX`; offsets and other counts are 64-bit (`INT64_MAX`). A path id that does not fit
  matches no route (404).
- JSON bodies are parsed once with a nesting limit and checked before marshmallow: more than
  `MAX_JSON_DEPTH` levels, invalid Unicode (lone surrogates), integers outside 64 bits and non-finite
  numbers answer 400 naming the place (`items.3.name`).
- Strings of input schemas are `Text`: no NUL character (PostgreSQL text cannot hold one), stated in the
  document as a pattern. Names refuse every control character (`NAME_PATTERN`).
- Path strings match no route when they hold a control character; uploaded file names are cleaned
  (`clean_filename`), since they are kept as metadata only.
"""

from __future__ import annotations

import json
import math
import re

from flask import Flask, request
from marshmallow import fields, validate
from werkzeug.routing import IntegerConverter, UnicodeConverter

from api.errors import ApiError

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
ID_MAX = 2**31 - 1  # ids and revisions: the catalog's INTEGER columns (32-bit in PostgreSQL)
MAX_JSON_DEPTH = 64
MAX_PATH_TEXT = 256

# Python's str.isspace() outside the control range, so the pattern says exactly what `Name` checks.
_SPACE = r" \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL_PATTERN = r"^[^\x00]*$"
NAME_PATTERN = rf"^[^\x00-\x1f\x7f{_SPACE}]([^\x00-\x1f\x7f]*[^\x00-\x1f\x7f{_SPACE}])?$"
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE_NAME = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


class Text(fields.String):
    """An input string: refuses NUL and lone surrogates (as JSON checks do for bodies; this covers query
    strings and form fields too), and says so in the document unless a stricter pattern does."""

    def __init__(self, **kw):
        super().__init__(**kw)
        if "pattern" not in self.metadata and not any(isinstance(getattr(v, "regex", None), re.Pattern)
                                                      for v in self.validators):
            self.metadata = {**self.metadata, "pattern": NO_NUL_PATTERN}

    default_error_messages = {
        "nul": "must not contain NUL (a control character)",
        "surrogate": "is not valid Unicode (lone surrogate)",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise self.make_error("nul")
        if _SURROGATE.search(text):
            raise self.make_error("surrogate")
        return text


# --- path parameters -----------------------------------------------------------------------------
class BoundedInt(IntegerConverter):
    """`<int:…>` (every one is an id) limited to what the catalog stores: a larger id matches no route
    (404), never a 500."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None, max: int | None = ID_MAX,  # noqa: A002
                 signed: bool = False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class PathText(UnicodeConverter):
    """`<string:…>` of at most MAX_PATH_TEXT characters without control characters (no user name, key or
    job id holds one, so such a path is a 404)."""

    def __init__(self, map, minlength: int = 1, maxlength: int | None = MAX_PATH_TEXT, length: int | None = None):
        super().__init__(map, minlength=minlength, maxlength=maxlength, length=length)
        self.min_length, self.max_length = (length, length) if length is not None else (minlength, maxlength)
        self.regex = self.regex.replace("[^/]", r"[^/\x00-\x1f\x7f]", 1)


def path_text_schema(converter: PathText) -> dict:
    schema = {"type": "string", "minLength": converter.min_length, "pattern": r"^[^/\x00-\x1f\x7f]+$"}
    if converter.max_length is not None:
        schema["maxLength"] = converter.max_length
    return schema


def register_converters(app: Flask, api) -> None:
    """Before any route is added: the bounded converters replace Flask's `int` and `string`."""
    app.url_map.converters.update({"int": BoundedInt, "string": PathText, "default": PathText})
    api.register_converter(PathText, path_text_schema)


# --- JSON bodies ---------------------------------------------------------------------------------
def _bad(path: str | None, problem: str) -> ApiError:
    name = path or "json"
    return ApiError(400, f"invalid input: {name}: {problem}", code="invalid_input", fields={name: [problem]})


def check_json(value, root: str | None = None) -> None:
    """Walk a parsed JSON value without recursion; 400 naming the first place that breaks a rule."""
    stack = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _bad(path, "is not valid Unicode (lone surrogate)")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise _bad(path, "integer out of range: JSON integers here are 64-bit")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _bad(path, "not a finite number")
        else:
            if depth >= MAX_JSON_DEPTH:
                raise _bad(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise _bad(path, "a key is not valid Unicode (lone surrogate)")
                stack.append((child, f"{path}.{key}" if path else str(key), depth + 1))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def load_json(data: bytes | str, root: str | None = None):
    """`json.loads` with the checks above. Raises ValueError for text that is not JSON (NaN and Infinity
    included), ApiError 400 for JSON that breaks a rule."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise _bad(root, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_json(value, root)
    return value


CHECKED = "loopline.json"  # request.environ key of the checked body


def check_json_body() -> None:
    """before_request for JSON bodies: parse and check once; webargs takes the result (`api.blueprint`),
    views that read the body themselves parse the same checked text again."""
    data = request.get_data(cache=True)
    if not data.strip():
        return
    try:
        request.environ[CHECKED] = load_json(data)
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json",
                       fields={"json": [f"not valid JSON: {exc}"]}) from None


# --- uploads -------------------------------------------------------------------------------------
def File(**kw) -> fields.Raw:  # noqa: N802 - a field factory reads like a type
    """An uploaded file of a multipart body, for the document (the view reads `request.files`)."""
    return fields.Raw(metadata={"type": "string", "format": "binary", **kw.pop("metadata", {})}, **kw)


def Files(max_items: int | None = None, **kw) -> fields.List:  # noqa: N802
    return fields.List(File(), validate=validate.Length(min=1, max=max_items), **kw)


def clean_filename(name: str | None) -> str | None:
    """An uploaded file's name as metadata: control characters (NUL included) and invalid Unicode dropped,
    at most 128 characters (the end kept, where the extension is: it fits every name column); None when
    nothing is left. Never used for a path."""
    cleaned = _UNSAFE_NAME.sub("", name or "").strip()
    return cleaned[-128:].strip() or None
