"""Content-addressed, atomic, streaming blob storage."""

from __future__ import annotations

import hashlib
import io

import pytest

from store.blobs import BlobNotFound, BlobTooLarge, LocalBlobStore


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
    before = store.path(existing).stat().st_mtime_ns
    items = [b"one", b"two", b"one", b"already here"]
    keys = store.put_many(items)
    assert keys == [hashlib.sha256(i).hexdigest() for i in items]
    assert [store.read_bytes(k) for k in keys] == items
    assert store.path(existing).stat().st_mtime_ns == before  # not written again
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert store.put_many([]) == []
