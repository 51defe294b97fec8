"""The wire under `Loopline`: the constants, one call (`request`, `_json`), pagination, and the
helpers that turn an error answer or a requests exception into a `LooplineError`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import requests

from loopline_client.errors import LooplineError, Unreachable

TERMINAL = ("succeeded", "failed", "cancelled")
CHUNK = 1 << 20
PAGE = 500  # the API's largest page
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".zip"}
Box4 = tuple[float, float, float, float]
PathLike = str | os.PathLike


class _Http:
    """One call of the API, its JSON, and every item of a paginated list."""

    # --- the wire ------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kw) -> requests.Response:
        """One call; LooplineError for an error answer, Unreachable for none."""
        kw.setdefault("timeout", self.timeout)
        try:
            res = self.http.request(method, self.url + path, **kw)
        except requests.Timeout as exc:
            raise Unreachable(f"{self.url} did not answer {method} {path} within {kw['timeout']:g}s ({exc})") from None
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}") from None
        if res.status_code >= 400:
            raise _error(res)
        return res

    def _json(self, method: str, path: str, **kw) -> Any:
        res = self.request(method, path, **kw)
        if res.status_code == 204 or not res.content:
            return None
        try:
            return res.json()
        except ValueError:
            raise LooplineError(res.status_code, "not_json", f"{method} {path} answered something other than "
                                                             f"JSON: is {self.url} a loopline server?") from None

    def _pages(self, path: str, params: dict | None = None, limit: int | None = None) -> Iterator[dict]:
        """Every item of a paginated list (pages of 500), at most `limit`."""
        params = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        offset, seen = 0, 0
        while True:
            page = self._json("GET", path, params={**params, "limit": PAGE, "offset": offset})
            for item in page["items"]:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            offset += len(page["items"])
            if not page["items"] or offset >= page.get("total", 0):
                return


def _error(res: requests.Response) -> LooplineError:
    try:
        err = res.json()["error"]
        return LooplineError(int(err.get("status", res.status_code)), err.get("code", "error"),
                             err.get("message", ""), err.get("fields"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return LooplineError(res.status_code, "http_error", f"{res.reason}: {res.text[:200]}")


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error, which says what happened (refused, no such host)."""
    inner: BaseException = exc
    while inner.__context__ is not None and not isinstance(inner, OSError):
        inner = inner.__context__
    text = str(inner)
    return text.split("] ", 1)[-1].rstrip(")'\"") if "Errno" in text else text


def _body(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _param(v):
    return ("true" if v else "false") if isinstance(v, bool) else v
