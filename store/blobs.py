"""Content-addressed blob storage.

A blob's key is the SHA-256 of its bytes, so the same image uploaded twice is stored once and a key
can never point at different content. Writes go to a temporary file in the same folder tree and are
renamed into place, so a reader never sees a half-written blob. `BlobStore` is the interface an
S3-compatible backend implements later; `LocalBlobStore` keeps blobs in a folder.

Nothing deletes a blob because one row stopped naming it: rows reference blobs, and the collector
(`services/collector.py`) deletes the blobs no row names once they are older than a grace period. What
makes that safe against a writer storing the same bytes at the same moment is the pair of operations
here: a put or `touch` leaves the blob present with a fresh modification time, and `delete_unreferenced`
re-checks age and references under a lock that excludes puts and touches of that key (`hold` keeps it
until the rows naming the blobs are committed). The argument is in `services/collector.py`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

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
        """Store everything read from `stream`; return (key, size). Over `max_bytes` stores nothing. On
        return the blob is there with a fresh modification time, also when it was stored before."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary file object positioned at the start of the blob."""

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the blob; False when it was not there. Only for blobs nothing can name (tests, tools):
        the catalog's blobs are deleted by the collector through `delete_unreferenced`."""

    @abstractmethod
    def touch(self, key: str) -> bool:
        """Refresh the blob's modification time, for a writer about to name a blob it did not write;
        False when it is not there (store it then)."""

    @abstractmethod
    def list_keys(self) -> Iterator[tuple[str, float]]:
        """Every stored blob as (key, modification time in seconds since the epoch), in no order."""

    @abstractmethod
    def delete_unreferenced(self, keys: Iterable[str], older_than: float,
                            referenced: Callable[[set[str]], set[str]]) -> list[str]:
        """Delete those of `keys` modified before `older_than` that `referenced` (called with them; it
        reads the catalog afresh) does not return, and return the deleted keys. The age check, the call
        and the delete happen under a lock that puts and touches of the same key wait for; a key that a
        writer holds right now is skipped (the next pass looks at it again)."""

    @contextmanager
    def hold(self) -> Iterator["BlobStore"]:
        """Blobs put or touched through the yielded store are not collected before the block ends: commit
        the rows that name them inside it. This default relies on the fresh modification time alone (the
        grace period); a backend with locks keeps them until the block ends."""
        yield self

    def sweep_temporary(self, older_than: float) -> int:
        """Remove leftovers of interrupted writes last modified before `older_than`; return how many."""
        return 0

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


COLLECT_BATCH = 256  # keys locked together for one catalog re-check


class _Locks:
    """flock locks on the folders of blob keys (one `.lock` file per leaf folder), released by `close`.
    Writers take them shared, the collector exclusive and without waiting."""

    def __init__(self, store: "LocalBlobStore"):
        self.store = store
        self.fds: dict[Path, int | None] = {}

    def take(self, key: str, exclusive: bool = False, wait: bool = True) -> bool:
        """Lock the key's folder (once per folder); False when `wait` is off and someone else holds it."""
        lock = self.store.path(key).parent / ".lock"
        if lock not in self.fds:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                fd = None
            except BaseException:
                os.close(fd)
                raise
            self.fds[lock] = fd
        return self.fds[lock] is not None

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds.clear()


class _Held:
    """The store as seen inside `LocalBlobStore.hold`: puts and touches keep their keys locked (shared)
    until the block ends, so the collector cannot delete them before the rows naming them are committed."""

    def __init__(self, store: "LocalBlobStore", locks: _Locks):
        self._store, self._locks = store, locks

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        return self._store._put_stream(stream, max_bytes, self._locks)

    def put_bytes(self, data: bytes) -> str:
        import io

        return self.put_stream(io.BytesIO(data))[0]

    def put_many(self, items: list[bytes]) -> list[str]:
        return self._store._put_many(items, self._locks)

    def touch(self, key: str) -> bool:
        self._locks.take(key)
        return self._store._touch_locked(key)

    def __getattr__(self, name):  # reads go straight to the store
        return getattr(self._store, name)


class LocalBlobStore(BlobStore):
    """Blobs as files `<root>/ab/cd/<key>`. Every put and touch runs under a shared flock of the key's
    folder (`ab/cd/.lock`), every collector delete under an exclusive one, so "old and unreferenced, so
    delete" can never interleave with a writer finding the blob present and keeping it."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    @contextmanager
    def hold(self) -> Iterator[BlobStore]:
        locks = _Locks(self)
        try:
            yield _Held(self, locks)
        finally:
            locks.close()

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> tuple[str, int]:
        with self.hold() as held:
            return held.put_stream(stream, max_bytes)

    def _put_stream(self, stream: BinaryIO, max_bytes: int | None, locks: _Locks) -> tuple[str, int]:
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
            locks.take(key)
            os.replace(tmp_name, self.path(key))  # atomic, and a fresh modification time
            return key, size
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def put_many(self, items: list[bytes]) -> list[str]:
        """Write all to temp files first, then fsync each and rename them into place: the first fsync
        flushes the file system journal for the whole batch, so a batch costs little more than one
        put. Blobs already stored are not written again, only touched."""
        with self.hold() as held:
            return held.put_many(items)

    def _put_many(self, items: list[bytes], locks: _Locks) -> list[str]:
        keys = [hashlib.sha256(data).hexdigest() for data in items]
        temps: dict[str, str] = {}
        seen: set[str] = set()
        try:
            for key, data in zip(keys, items, strict=True):
                if key in seen:
                    continue
                seen.add(key)
                locks.take(key)  # before looking: present now means present until the lock goes
                if self._touch_locked(key):
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
                os.replace(tmp_name, self.path(key))
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
        locks = _Locks(self)
        try:
            locks.take(key, exclusive=True)
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False
        finally:
            locks.close()

    def touch(self, key: str) -> bool:
        with self.hold() as held:
            return held.touch(key)

    def _touch_locked(self, key: str) -> bool:
        try:
            os.utime(self.path(key))
            return True
        except FileNotFoundError:
            return False

    def list_keys(self) -> Iterator[tuple[str, float]]:
        for top in _subfolders(self.root):
            for leaf in _subfolders(top):
                with os.scandir(leaf) as entries:
                    for entry in entries:
                        if _KEY.match(entry.name) and entry.name.startswith(top.name + leaf.name):
                            try:
                                yield entry.name, entry.stat(follow_symlinks=False).st_mtime
                            except FileNotFoundError:
                                continue

    def delete_unreferenced(self, keys: Iterable[str], older_than: float,
                            referenced: Callable[[set[str]], set[str]]) -> list[str]:
        keys = list(dict.fromkeys(check_key(k) for k in keys))
        deleted: list[str] = []
        for start in range(0, len(keys), COLLECT_BATCH):
            deleted += self._delete_batch(keys[start:start + COLLECT_BATCH], older_than, referenced)
        return deleted

    def _delete_batch(self, keys: list[str], older_than: float, referenced) -> list[str]:
        locks = _Locks(self)
        try:
            old = set()
            for key in keys:
                if not locks.take(key, exclusive=True, wait=False):
                    continue  # a writer holds it now
                try:
                    if self.path(key).stat().st_mtime < older_than:
                        old.add(key)
                except FileNotFoundError:
                    continue
            if not old:
                return []
            named = referenced(set(old))
            deleted = []
            for key in sorted(old - set(named)):
                try:
                    self.path(key).unlink()
                    deleted.append(key)
                except FileNotFoundError:
                    pass
            return deleted
        finally:
            locks.close()

    def sweep_temporary(self, older_than: float) -> int:
        removed = 0
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                try:
                    if entry.name.startswith("put-") and entry.stat().st_mtime < older_than:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


def _subfolders(folder: Path) -> list[Path]:
    """The two-hex-digit folders of the blob tree."""
    with os.scandir(folder) as entries:
        return [Path(e.path) for e in entries if len(e.name) == 2 and e.is_dir(follow_symlinks=False)
                and all(c in "0123456789abcdef" for c in e.name)]
