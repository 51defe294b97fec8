"""Content-addressed blob storage.

A blob's key is the SHA-256 of its bytes, so the same image uploaded twice is stored once and a key
can never point at different content. Writes go to a temporary file in the same folder tree and are
renamed into place, so a reader never sees a half-written blob. `BlobStore` is the interface an
S3-compatible backend implements later; `LocalBlobStore` keeps blobs in a folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO, Iterator

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[0-9a-f]{64}$")


class BlobNotFound(KeyError):
    pass


class BlobTooLarge(ValueError):
    pass


def check_key(key: str) -> str:
    """Keys are hex digests only: a client can never smuggle a path into storage."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"not a blob key: {key!r}")
    return key


class BlobStore(ABC):
    @abstractmethod
    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        """Store everything read from `stream`; return (key, size). Over `max_bytes` stores nothing."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary file object positioned at the start of the blob."""

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the blob; False when it was not there."""

    def put_bytes(self, data: bytes) -> str:
        import io

        return self.put_stream(io.BytesIO(data))[0]

    def put_many(self, items: list[bytes]) -> list[str]:
        """Store several blobs; return their keys in order. Backends may make them durable together."""
        return [self.put_bytes(data) for data in items]

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def save_as(self, key: str, path: str | os.PathLike) -> None:
        """Copy the blob to a local file (for libraries that only read paths, like Keras)."""
        with self.open(key) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)

    def iter_range(self, key: str, start: int = 0, end: int | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
        """Stream bytes [start, end) without loading the blob into memory (for HTTP Range responses)."""
        with self.open(key) as fh:
            fh.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                data = fh.read(chunk if remaining is None else min(chunk, remaining))
                if not data:
                    return
                if remaining is not None:
                    remaining -= len(data)
                yield data


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise BlobTooLarge(f"blob exceeds {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            key = digest.hexdigest()
            final = self.path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)  # atomic; identical content makes this a no-op in effect
            return key, size
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def put_many(self, items: list[bytes]) -> list[str]:
        """Write all to temp files first, then fsync each and rename them into place: the first fsync
        flushes the file system journal for the whole batch, so a batch costs little more than one
        put. Blobs already stored are not written again."""
        keys = [hashlib.sha256(data).hexdigest() for data in items]
        temps: dict[str, str] = {}
        try:
            for key, data in zip(keys, items, strict=True):
                if key in temps or self.exists(key):
                    continue
                fd, temps[key] = tempfile.mkstemp(dir=self._tmp, prefix="put-")
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            for tmp_name in temps.values():
                fd = os.open(tmp_name, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for key, tmp_name in list(temps.items()):
                final = self.path(key)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, final)
                del temps[key]
        finally:
            for tmp_name in temps.values():
                Path(tmp_name).unlink(missing_ok=True)
        return keys

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False
