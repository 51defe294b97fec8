"""Content-addressed, atomic, streaming blob storage."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time

import pytest

from store.blobs import BlobNotFound, BlobTooLarge, LocalBlobStore
from tests.support.waiting import wait_until


def _blocked_on(lock_file) -> bool:
    """Whether some process waits for a flock of `lock_file` (Linux's /proc/locks marks waiters `->`)."""
    inode = str(os.stat(lock_file).st_ino)
    with open("/proc/locks") as fh:
        return any(line.split()[1] == "->" and line.split()[6].rsplit(":", 1)[-1] == inode for line in fh)


def _age(store: LocalBlobStore, key: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(store.path(key), (then, then))


class Exploding(io.RawIOBase):
    """A stream that fails halfway, as a dropped upload would."""

    def __init__(self):
        self.sent = 0

    def readable(self):
        return True

    def readinto(self, buf):
        if self.sent > 3 * 1024 * 1024:
            raise ConnectionError("client went away")
        n = len(buf)
        buf[:n] = b"a" * n
        self.sent += n
        return n


def test_put_is_content_addressed_and_idempotent(tmp_path):
    store = LocalBlobStore(tmp_path)
    data = b"loopline" * 1000
    key = store.put_bytes(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert store.put_bytes(data) == key and store.read_bytes(key) == data and store.size(key) == len(data)
    assert store.delete(key) and not store.exists(key) and not store.delete(key)
    with pytest.raises(BlobNotFound):
        store.open(key)


def test_ranges_stream_without_reading_everything(tmp_path):
    store = LocalBlobStore(tmp_path)
    data = bytes(range(256)) * 8192  # 2 MiB
    key = store.put_bytes(data)
    assert b"".join(store.iter_range(key, 1000, 1_500_000, chunk=65536)) == data[1000:1_500_000]
    chunks = list(store.iter_range(key, chunk=65536))
    assert len(chunks) == 32 and b"".join(chunks) == data


def test_failed_or_oversize_writes_leave_nothing(tmp_path):
    store = LocalBlobStore(tmp_path)
    with pytest.raises(ConnectionError):
        store.put_stream(io.BufferedReader(Exploding()))
    with pytest.raises(BlobTooLarge):
        store.put_stream(io.BytesIO(b"x" * 2000), max_bytes=1000)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "abc", "", "0" * 63 + "/"])
def test_keys_cannot_be_paths(tmp_path, key):
    with pytest.raises(ValueError):
        LocalBlobStore(tmp_path).open(key)


def test_put_many_stores_a_batch_in_order_once_per_content(tmp_path):
    store = LocalBlobStore(tmp_path)
    existing = store.put_bytes(b"already here")
    _age(store, existing, 7200)
    before = store.path(existing).stat()
    items = [b"one", b"two", b"one", b"already here"]
    keys = store.put_many(items)
    assert keys == [hashlib.sha256(i).hexdigest() for i in items]
    assert [store.read_bytes(k) for k in keys] == items
    after = store.path(existing).stat()
    assert after.st_ino == before.st_ino  # not written again
    assert after.st_mtime > before.st_mtime + 3600  # but touched: about to be named, so not old
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert store.put_many([]) == []


def test_keys_are_listed_with_their_modification_time_and_touch_refreshes_it(tmp_path):
    store = LocalBlobStore(tmp_path)
    a, b = store.put_bytes(b"a"), store.put_bytes(b"b")
    _age(store, a, 7200)
    listed = dict(store.list_keys())
    assert set(listed) == {a, b}  # not the lock files, not the temp folder
    assert listed[a] < time.time() - 3600 < listed[b]
    assert store.touch(a) and dict(store.list_keys())[a] > time.time() - 60
    assert not store.touch("0" * 64)


def test_delete_unreferenced_deletes_only_old_keys_nothing_names(tmp_path):
    store = LocalBlobStore(tmp_path)
    old, named, young = store.put_bytes(b"old"), store.put_bytes(b"named"), store.put_bytes(b"young")
    for key in (old, named):
        _age(store, key, 7200)
    asked = []

    def referenced(keys):
        asked.append(set(keys))
        return {named} & keys

    deleted = store.delete_unreferenced([old, named, young, "f" * 64], time.time() - 3600, referenced)
    assert deleted == [old]
    assert asked == [{old, named}]  # the catalog is asked about the old ones only
    assert not store.exists(old) and store.exists(named) and store.exists(young)


def test_a_held_blob_is_not_collected_until_the_hold_ends(tmp_path):
    store = LocalBlobStore(tmp_path)
    key = store.put_bytes(b"shared bytes")
    _age(store, key, 7200)
    with store.hold() as held:
        assert held.put_many([b"shared bytes"]) == [key]  # reused, and held
        _age(store, key, 7200)  # even if it looked old: the hold, not the age, protects it here
        assert store.delete_unreferenced([key], time.time() + 60, lambda keys: set()) == []
        assert store.exists(key)
    assert store.delete_unreferenced([key], time.time() + 60, lambda keys: set()) == [key]


def test_a_put_waits_for_a_collection_in_progress_and_then_stores_the_blob_again(tmp_path):
    store = LocalBlobStore(tmp_path)
    key = store.put_bytes(b"contested")
    _age(store, key, 7200)
    in_check, release = threading.Event(), threading.Event()
    put_done: list[str] = []

    def referenced(keys):  # the collector's catalog read, with the key's exclusive lock held
        in_check.set()
        assert release.wait(10)
        return set()

    def put():
        put_done.append(store.put_many([b"contested"])[0])

    collector = threading.Thread(target=lambda: store.delete_unreferenced([key], time.time(), referenced))
    collector.start()
    assert in_check.wait(10)
    writer = threading.Thread(target=put)
    writer.start()
    wait_until(lambda: _blocked_on(store.path(key).parent / ".lock"), 10, "the put waiting for the lock")
    assert not put_done
    release.set()
    collector.join(10)
    writer.join(10)
    assert put_done == [key]
    assert store.read_bytes(key) == b"contested"  # deleted by the collector, then written again by the put


def test_stale_temp_files_are_swept(tmp_path):
    store = LocalBlobStore(tmp_path)
    stale, fresh = tmp_path / ".tmp" / "put-stale", tmp_path / ".tmp" / "put-fresh"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    then = time.time() - 7200
    os.utime(stale, (then, then))
    assert store.sweep_temporary(time.time() - 3600) == 1
    assert not stale.exists() and fresh.exists()
