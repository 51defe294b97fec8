"""`Loopline`: ask the API for a dataset, wait for its build, and get it onto this disk verified.

A training run must not start from a partial or corrupted dataset, and a flaky link must not cost a
full re-download, so: the build is awaited over Socket.IO with polling as a backstop (a socket that
never connects or silently drops only slows the wait down), the zip is resumed with `Range` +
`If-Range` (a changed file restarts it), checked against the server's SHA-256, unpacked beside the
destination and renamed into place (a reader never sees half a folder), and every file is checked
against the manifest. A folder already there that verifies is returned as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

import requests

TERMINAL = ("succeeded", "failed", "cancelled")
CHUNK = 1 << 20


class LooplineError(Exception):
    """An error answer of the API: its status, code, message and the input fields it blames."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}
        super().__init__(f"{status} {code}: {message}")


class DatasetBuildFailed(Exception):
    """The build job failed or was cancelled; `job` is its last JSON."""

    def __init__(self, message: str, job: dict | None = None):
        super().__init__(message)
        self.job = job


class ChecksumMismatch(Exception):
    """A download or an unpacked file does not match its SHA-256; the bad copy has been deleted."""


class UnsafeArchive(Exception):
    """The zip names a path outside the destination folder (or a link); nothing was unpacked."""


class Loopline:
    """A client for one API. `poll_interval`: seconds between job polls, which run even while
    Socket.IO is connected; `socketio_url` defaults to `url` (a proxy may serve it elsewhere)."""

    def __init__(self, url: str, token: str, *, timeout: float = 30, poll_interval: float = 3.0,
                 socketio_url: str | None = None):
        self.url = url.rstrip("/")
        self.token, self.timeout, self.poll_interval = token, timeout, poll_interval
        self.socketio_url = (socketio_url or self.url).rstrip("/")
        self.waited_with: str | None = None  # "socketio" or "polling": how the last wait_job listened
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "User-Agent": "loopline-client"})

    # --- REST ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kw) -> requests.Response:
        res = self.http.request(method, self.url + path, timeout=self.timeout, **kw)
        if res.status_code >= 400:
            raise _error(res)
        return res

    def dataset(self, key: str) -> dict:
        return self._call("GET", f"/api/datasets/{key}").json()

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"/api/jobs/{job_id}").json()

    def request_dataset(self, project_id: int, name: str, handler: str, label_map_id: int, config: dict | None = None,
                        subset: str = "all", dest: str | os.PathLike = ".", wait_timeout: float = 3600,
                        progress: bool = True, use_socketio: bool = True) -> Path:
        """Ask for the dataset, wait for its build if it has none yet, and return `dest/<key>/`, verified.
        Raises LooplineError (refused request), DatasetBuildFailed, TimeoutError (after `wait_timeout`
        seconds of building), ChecksumMismatch or UnsafeArchive."""
        body = self._call("POST", "/api/datasets", json={
            "project_id": project_id, "name": name, "handler": handler, "label_map_id": label_map_id,
            "subset": subset, "config": config or {}}).json()
        dataset = body["dataset"]
        if body.get("job"):
            job = self.wait_job(body["job"]["id"], wait_timeout, progress=progress, use_socketio=use_socketio)
            if job["status"] != "succeeded":
                raise DatasetBuildFailed(f"the build of dataset {dataset['key']} {job['status']}: "
                                         f"{job.get('error') or job.get('message')}", job)
            dataset = self.dataset(dataset["key"])
        if dataset["status"] != "ready":
            raise DatasetBuildFailed(f"dataset {dataset['key']} is {dataset['status']}: {dataset.get('error')}")
        return self.fetch(dataset, dest, progress=progress)

    # --- waiting -------------------------------------------------------------------------------
    def wait_job(self, job_id: str, timeout: float = 3600, *, progress: bool = False,
                 use_socketio: bool = True) -> dict:
        """Block until the job ends and return its JSON. Events come over Socket.IO when it connects;
        the job is polled every `poll_interval` seconds regardless, so a lost event costs one interval."""
        events: queue.Queue = queue.Queue()
        sio = self._subscribe(job_id, events.put) if use_socketio else None
        self.waited_with = "socketio" if sio else "polling"
        deadline = time.monotonic() + timeout
        shown = ""
        try:
            job = self.job(job_id)  # read after joining, so no event can fall between the two
            next_poll = time.monotonic() + self.poll_interval
            while job["status"] not in TERMINAL:
                if progress:
                    pct = 100 * (job.get("progress") or 0)
                    line = f"building: {job['status']} {pct:3.0f}% {job.get('message') or ''}"[:100]
                    sys.stderr.write("\r" + line.ljust(len(shown)))
                    sys.stderr.flush()
                    shown = line
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout:g}s")
                try:
                    job = events.get(timeout=min(next_poll, deadline) - now)
                except queue.Empty:
                    next_poll = time.monotonic() + self.poll_interval
                    try:
                        job = self.job(job_id)
                    except (requests.ConnectionError, requests.Timeout):  # the API restarting: keep waiting
                        pass
        finally:
            if sio is not None:
                sio.disconnect()
            if shown:
                sys.stderr.write("\n")
        return job

    def _subscribe(self, job_id: str, put):
        """A Socket.IO client in the job's room, or None when it cannot connect or join."""
        import socketio

        sio = socketio.Client(reconnection=False, handle_sigint=False)
        sio.on("job", lambda data: put(data) if isinstance(data, dict) and data.get("id") == job_id else None)
        try:
            sio.connect(self.socketio_url, auth={"token": self.token}, transports=["websocket"],
                        wait_timeout=min(10, self.timeout))
            answer = sio.call("join", {"job": job_id}, timeout=min(10, self.timeout))
            if isinstance(answer, dict) and answer.get("ok"):
                return sio
        except Exception:  # no socket at all is fine: polling does the job
            pass
        with contextlib.suppress(Exception):
            sio.disconnect()
        return None

    # --- downloading ---------------------------------------------------------------------------
    def fetch(self, dataset: dict, dest: str | os.PathLike = ".", *, progress: bool = True) -> Path:
        """`dest/<key>/` for a ready dataset's JSON: kept when it verifies, else downloaded and unpacked."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        key, files = dataset["key"], dataset["manifest"].get("files", {})
        folder = dest / key
        if folder.is_dir():
            try:
                verify_folder(folder, files)
                return folder
            except ChecksumMismatch as exc:
                if progress:
                    print(f"{folder} does not verify ({exc}); downloading it again", file=sys.stderr)
                shutil.rmtree(folder)
        part = dest / f"{key}.zip.part"
        self._download(dataset, part, progress)
        try:
            return _unpack(part, folder, files)
        finally:
            part.unlink(missing_ok=True)

    def _download(self, dataset: dict, part: Path, progress: bool) -> None:
        key, size = dataset["key"], dataset["size_bytes"]
        expected = dataset["sha256"]
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have < size:
            expected = self._transfer(f"/api/datasets/{key}/archive", part, have, size, expected, progress)
        if part.stat().st_size < size:  # the connection ended early: keep the part for the next try
            raise requests.ConnectionError(f"download of {key} stopped at {part.stat().st_size} of {size} "
                                           f"bytes; run again to resume")
        if _sha256(part) != expected:
            part.unlink()
            raise ChecksumMismatch(f"the download of dataset {key} does not match its SHA-256 {expected}; deleted")

    def _transfer(self, path: str, part: Path, have: int, size: int, sha256: str, progress: bool) -> str:
        """Append the missing bytes (or restart when the server will not resume); return the SHA-256
        the server announced."""
        headers = {"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'} if have else {}
        with self.http.get(self.url + path, headers=headers, stream=True, timeout=self.timeout) as res:
            if res.status_code >= 400:
                raise _error(res)
            resumed = res.status_code == 206 and res.headers.get("Content-Range") == f"bytes {have}-{size - 1}/{size}"
            if have and not resumed and res.status_code != 200:  # a range we did not ask for: ask for all
                res.close()
                part.unlink()
                return self._transfer(path, part, 0, size, sha256, progress)
            start = have if resumed else 0
            bar = _Bar(f"dataset {part.name[:12]}", size, start, progress)
            with open(part, "ab" if resumed else "wb") as out:
                for chunk in res.iter_content(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            bar.close()
            return res.headers.get("X-Checksum-SHA256") or sha256


def verify_folder(folder: str | os.PathLike, expected_files: dict | None = None) -> dict:
    """Check every file `manifest.json` lists (and, when given, that it lists `expected_files`, the
    server's); return the manifest. Raises ChecksumMismatch naming the first bad file."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChecksumMismatch(f"{folder}/manifest.json is missing or unreadable: {exc}") from None
    if expected_files is not None and files != expected_files:
        raise ChecksumMismatch(f"{folder}/manifest.json does not list the files the server built")
    for name, entry in files.items():
        path = folder / _safe_name(name)
        if not path.is_file() or path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
            raise ChecksumMismatch(f"{path} does not match the manifest")
    return manifest


def _unpack(archive: Path, folder: Path, expected_files: dict) -> Path:
    """Extract into a temporary sibling, verify, then rename it to `folder` in one step."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name[:12]}-", dir=folder.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:  # check them all before writing anything
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UnsafeArchive(f"{archive.name}: {info.filename!r} is a link")
                _safe_name(info.filename)
            for info in members:
                target = tmp / _safe_name(info.filename)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        verify_folder(tmp, expected_files)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process put it there first
            if not folder.is_dir():
                raise
            verify_folder(folder, expected_files)
        return folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe_name(name: str) -> PurePosixPath:
    """A relative path that stays inside its folder, or UnsafeArchive."""
    path = PurePosixPath(name)
    if (not name or "\\" in name or "\0" in name or path.is_absolute() or ".." in path.parts
            or ":" in path.parts[0]):
        raise UnsafeArchive(f"archive member {name!r} would land outside the dataset folder")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _error(res: requests.Response) -> LooplineError:
    try:
        err = res.json()["error"]
        return LooplineError(int(err.get("status", res.status_code)), err.get("code", "error"),
                             err.get("message", ""), err.get("fields"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return LooplineError(res.status_code, "http_error", f"{res.reason}: {res.text[:200]}")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


class _Bar:
    """A one-line progress bar on stderr: bytes done, total and percent, at most ten redraws a second."""

    def __init__(self, label: str, total: int, done: int = 0, enabled: bool = True):
        self.label, self.total, self.done, self.enabled, self._last = label, total, done, enabled, 0.0

    def update(self, n: int) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self._last >= 0.1:
            self._draw()

    def _draw(self) -> None:
        self._last = time.monotonic()
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {_human(self.done)} / {_human(self.total)} {100 * frac:5.1f}%")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            sys.stderr.write("\n")
