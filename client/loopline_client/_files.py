"""Bytes on disk: streamed, resumable downloads (`_save`, `fetch`) verified against the manifest and
unpacked safely, and the upload side (collecting files, batching them under the server's limits, the
streamed multipart body, progress bars)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import requests
from tqdm import tqdm

from loopline_client._http import _error, _Http, _reason, CHUNK, IMAGE_SUFFIXES, PathLike
from loopline_client.errors import ChecksumMismatch, UnsafeArchive, Unreachable


class _Files(_Http):
    """Downloads: a file to a path, a dataset to a verified folder (resumed, checked, unpacked)."""

    # --- downloading ---------------------------------------------------------------------------
    def _save(self, path: str, dest: Path, progress: bool) -> Path:
        """Stream a file to `dest` (a folder: the server's file name in it) through a `.part` beside it."""
        try:
            res = self.http.get(self.url + path, stream=True, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}") from None
        with res:
            if res.status_code >= 400:
                raise _error(res)
            if dest.is_dir():
                name = _filename(res.headers.get("Content-Disposition", "")) or PurePosixPath(path).name
                dest = dest / name
            part = dest.with_name(dest.name + ".part")
            total = int(res.headers.get("Content-Length") or 0) or None
            try:
                with open(part, "wb") as out, _bytes_bar(progress, dest.name[:20], total) as bar:
                    for chunk in res.iter_content(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                os.replace(part, dest)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        return dest

    def fetch(self, dataset: dict, dest: PathLike = ".", *, progress: bool = True) -> Path:
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
            raise Unreachable(f"download of {key} stopped at {part.stat().st_size} of {size} bytes; run again to resume")
        if _sha256(part) != expected:
            part.unlink()
            raise ChecksumMismatch(f"the download of dataset {key} does not match its SHA-256 {expected}; deleted")

    def _transfer(self, path: str, part: Path, have: int, size: int, sha256: str, progress: bool) -> str:
        """Append the missing bytes (or restart when the server will not resume); return the SHA-256
        the server announced."""
        headers = {"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'} if have else {}
        try:
            res = self.http.get(self.url + path, headers=headers, stream=True, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}") from None
        with res:
            if res.status_code >= 400:
                raise _error(res)
            resumed = res.status_code == 206 and res.headers.get("Content-Range") == f"bytes {have}-{size - 1}/{size}"
            if have and not resumed and res.status_code != 200:  # a range we did not ask for: ask for all
                res.close()
                part.unlink()
                return self._transfer(path, part, 0, size, sha256, progress)
            start = have if resumed else 0
            try:
                with open(part, "ab" if resumed else "wb") as out, \
                        _bytes_bar(progress, f"dataset {part.name[:12]}", size, start) as bar:
                    for chunk in res.iter_content(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
            except requests.RequestException as exc:  # keep the part: the next try resumes
                raise Unreachable(f"the download of {part.name} broke off ({_reason(exc)}); run again to resume") \
                    from None
            return res.headers.get("X-Checksum-SHA256") or sha256


def verify_folder(folder: PathLike, expected_files: dict | None = None) -> dict:
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


def _filename(disposition: str) -> str | None:
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            name = PurePosixPath(value.strip('"')).name
            return name if name not in ("", ".", "..") else None
    return None


# --- uploads -------------------------------------------------------------------------------------
def _collect(paths: Iterable[PathLike]) -> list[tuple[str, Path, int]]:
    """(name sent, path, size) for files as given and for the images and zips inside folders (sorted,
    hidden entries skipped); the name of a file found in a folder is its path from that folder."""
    out: list[tuple[str, Path, int]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                rel = found.relative_to(path)
                if found.is_file() and found.suffix.lower() in IMAGE_SUFFIXES and not any(
                        p.startswith(".") for p in rel.parts):
                    out.append((f"{path.name}/{rel.as_posix()}", found, found.stat().st_size))
        elif path.is_file():
            out.append((path.name, path, path.stat().st_size))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return out


def _items(path: Path) -> int:
    """Report entries a file will make on the server (members of a zip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return max(1, len(zf.infolist()))
    except (zipfile.BadZipFile, OSError):
        return 1


def _batches(files: list[tuple[str, Path, int]], limits: dict) -> tuple[list[list], list]:
    """Files grouped into requests under the server's request size and item limits; those that fit none."""
    budget = int(limits.get("max_request_bytes", 64 << 20) * 0.95) - (64 << 10)
    max_items = int(limits.get("max_upload_items", 10_000))
    batches: list[list] = []
    too_big: list = []
    size = items = 0
    for entry in files:
        cost = entry[2] + 512  # the part's own headers
        count = _items(entry[1]) if entry[1].suffix.lower() == ".zip" else 1
        if cost > budget:
            too_big.append(entry)
            continue
        if not batches or size + cost > budget or items + count > max_items:
            batches.append([])
            size = items = 0
        batches[-1].append(entry)
        size += cost
        items += count
    return batches, too_big


class _Multipart:
    """A multipart/form-data body read from disk while it is sent (never whole in memory), its length
    known up front; `bar` counts the file bytes that went out."""

    def __init__(self, fields: list[tuple[str, str]], files: list[tuple[str, str, Path]], bar):
        self.boundary = "loopline-" + secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._parts: list[bytes | Path] = []
        for name, value in fields:
            self._parts.append(f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                               .encode() + value.encode() + b"\r\n")
        for name, filename, path in files:
            safe = "".join(c for c in filename if c >= " " and c != "\x7f").replace('"', "%22").replace("\\", "/")
            self._parts.append(f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                               f'filename="{safe}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
            self._parts.append(path)
            self._parts.append(b"\r\n")
        self._parts.append(f"--{self.boundary}--\r\n".encode())
        self.length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in self._parts)
        self._bar = bar
        self._index, self._fh, self._buf = 0, None, b""

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n is None or n < 0 else max(n, 64 << 10)
        out = bytearray()
        while len(out) < n and self._index < len(self._parts):
            part = self._parts[self._index]
            if isinstance(part, bytes):
                out += part
                self._index += 1
                continue
            if self._fh is None:
                self._fh = open(part, "rb")
            chunk = self._fh.read(n - len(out))
            if chunk:
                out += chunk
                if self._bar is not None:
                    self._bar.update(len(chunk))
            else:
                self._fh.close()
                self._fh = None
                self._index += 1
        return bytes(out)


@contextlib.contextmanager
def _bytes_bar(enabled: bool, label: str, total: int | None, initial: int = 0):
    fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B [{elapsed}<{remaining}, {rate_fmt}]" \
        if total else None
    bar = tqdm(total=total, initial=initial, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
               file=sys.stderr, disable=not enabled, mininterval=0.1, leave=True, bar_format=fmt)
    try:
        yield bar
    finally:
        bar.close()
