"""TFRecord shards in the TF Object Detection API layout, written without TensorFlow.

Dataset builds run in augmentation workers, which must not pay for importing TensorFlow (seconds and
hundreds of MB per worker), so this module frames records and encodes `tf.train.Example` protobufs by
hand. Output is deterministic: the same records in the same order give byte-identical files (feature
keys are sorted, as protobuf's deterministic serialisation sorts map keys). crc32c comes from the
compiled `google-crc32c`; a pure-Python one would be far too slow for 100 KB images.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import numbers
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import google_crc32c

from handlers.records import LabelMapSpec, Record

TYPES = ("bytes", "float", "int64")  # Feature's oneof, in field-number order
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _as_bytes(value) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{type(value).__name__} is not bytes or str")


def _int64(value) -> int:
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{value!r} is not an integer")
    if not _INT64[0] <= int(value) <= _INT64[1]:
        raise ValueError(f"{value} is out of int64 range")
    return int(value) & 0xFFFF_FFFF_FFFF_FFFF  # negatives: 10-byte two's complement varint


def _feature(kind: str, values) -> bytes:
    """One Feature. Empty lists still name their kind, since TF's parser refuses an untyped empty one."""
    if kind == "bytes":
        inner = b"".join(_field(1, _as_bytes(v)) for v in values)
    elif kind == "float":
        inner = _field(1, struct.pack(f"<{len(values)}f", *values)) if values else b""
    elif kind == "int64":
        inner = _field(1, b"".join(_varint(_int64(v)) for v in values)) if values else b""
    else:
        raise ValueError(f"unknown feature type {kind!r}, expected one of {TYPES}")
    return _field(TYPES.index(kind) + 1, inner)


def example_bytes(features: dict[str, tuple[str, list]]) -> bytes:
    """A serialised `tf.train.Example` from {name: (type, values)}, type "bytes" (str is utf-8 encoded),
    "float" (float32) or "int64". Raises ValueError naming the feature for anything TF would not hold."""
    entries = []
    for key in sorted(features):  # str order is utf-8 byte order, which deterministic protobuf uses
        try:
            kind, values = features[key]
            feature = _feature(kind, list(values))
        except (TypeError, ValueError, OverflowError, struct.error) as e:
            raise ValueError(f"feature {key!r}: {e}") from None
        entries.append(_field(1, _field(1, key.encode()) + _field(2, feature)))
    return _field(1, b"".join(entries))


def _typed(value) -> tuple[str, list]:
    """An extra feature's (type, values): given as such a tuple, a scalar, or a list whose type is inferred."""
    if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and value[0] in TYPES
            and not isinstance(value[1], (str, bytes))):
        return value[0], list(value[1])
    values = [value] if isinstance(value, (str, bytes, bytearray, numbers.Number)) else list(value)
    if not values:
        raise ValueError("an empty list has no type: give it as (type, [])")
    if all(isinstance(v, (str, bytes, bytearray)) for v in values):
        return "bytes", values
    if all(isinstance(v, numbers.Integral) for v in values):
        return "int64", values
    if all(isinstance(v, numbers.Real) for v in values):
        return "float", values
    raise ValueError(f"cannot infer one type for {values[:5]!r}")


def record_features(record: Record) -> dict[str, tuple[str, list]]:
    """The TF Object Detection API features of a record, plus its `extra` ones."""
    n = len(record.labels)
    for name in ("xmin", "xmax", "ymin", "ymax", "texts"):
        if len(getattr(record, name)) != n:
            raise ValueError(f"record {record.source_id}: {len(getattr(record, name))} {name} for {n} labels")
    if record.format not in ("jpeg", "png"):
        raise ValueError(f"record {record.source_id}: image/format must be 'jpeg' or 'png', not {record.format!r}")
    source_id = record.source_id.encode()
    features = {
        "image/height": ("int64", [record.height]),
        "image/width": ("int64", [record.width]),
        "image/filename": ("bytes", [source_id]),
        "image/source_id": ("bytes", [source_id]),
        "image/key/sha256": ("bytes", [hashlib.sha256(record.encoded).hexdigest().encode()]),
        "image/encoded": ("bytes", [record.encoded]),
        "image/format": ("bytes", [record.format.encode()]),
        **{f"image/object/bbox/{c}": ("float", list(getattr(record, c))) for c in ("xmin", "xmax", "ymin", "ymax")},
        "image/object/class/text": ("bytes", [t.encode() for t in record.texts]),
        "image/object/class/label": ("int64", list(record.labels)),
    }
    for name, value in record.extra.items():
        if name in features:
            raise ValueError(f"record {record.source_id}: extra feature {name!r} would replace a standard one")
        try:
            features[name] = _typed(value)
        except ValueError as e:
            raise ValueError(f"record {record.source_id}: extra feature {name!r}: {e}") from None
    return features


def _masked_crc(data) -> int:
    crc = google_crc32c.value(data)
    return ((crc >> 15 | crc << 17) + 0xA282EAD8) & 0xFFFF_FFFF


class TFRecordWriter:
    """Writes framed records to one file: u64 length, masked crc32c of it, data, masked crc32c of data."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = open(self.path, "wb", buffering=1 << 20)
        self.records = 0
        self.bytes = 0

    def write(self, example: bytes) -> int:
        """Appends one record; returns its framed size in bytes."""
        header = struct.pack("<Q", len(example))
        self._file.write(header + struct.pack("<I", _masked_crc(header)))
        self._file.write(example)
        self._file.write(struct.pack("<I", _masked_crc(example)))
        self.records += 1
        self.bytes += len(example) + 16
        return len(example) + 16

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _balanced_bounds(sizes: list[int], target_bytes: int, max_records: int | None) -> list[int]:
    """Record indexes where shards start, then the end. The fewest shards that meet the target size and
    record limit; each cut at the record boundary nearest the ideal one, so a shard is within one record
    of total / n, unless the record limit (or keeping shards non-empty) forces a cut elsewhere."""
    m, total, ends = len(sizes), sum(sizes), list(itertools.accumulate(sizes))
    cap = min(max_records or m, m)
    n = min(m, max(1, -(-total // target_bytes), -(-m // cap)))
    bounds = [0]
    for i in range(1, n):
        goal = total * i / n
        j = bisect.bisect_left(ends, goal)  # record j straddles (or ends at) the goal
        cut = j + 1 if ends[j] - goal < goal - (ends[j - 1] if j else 0) else j
        lo, hi = max(bounds[-1] + 1, m - (n - i) * cap), min(bounds[-1] + cap, m - (n - i))
        bounds.append(min(max(cut, lo), hi))  # lo <= hi whenever m / cap <= n <= m
    return bounds + [m]


def _copy_range(src: int, dst: int, offset: int, count: int) -> None:
    end = offset + count
    try:  # in-kernel copy; a reflink on filesystems that have them
        while offset < end and (done := os.copy_file_range(src, dst, end - offset, offset)):
            offset += done
    except (OSError, AttributeError):
        pass
    while offset < end:
        view = memoryview(os.pread(src, min(1 << 22, end - offset), offset))
        if not view:
            raise OSError("short read while splitting shards")
        offset += len(view)
        while view:
            view = view[os.write(dst, view):]


class ShardedWriter:
    """Writes one split's records into balanced shards `{split}-{i:05d}-of-{n:05d}.tfrecord` in `folder`.

    n is only known at the end, so records go to one hidden temporary file and close() cuts it into n
    shards of near-equal size, from the last shard backwards, truncating as it goes (disk peaks at the
    data plus one shard; shard 0 is the temporary file renamed). Older shards of the same split in the
    folder are deleted then, so a retried build never leaves a stale set beside the new one. Use one
    writer per split and folder. With no records, close() writes nothing and returns [].
    """

    def __init__(self, folder: str | os.PathLike, split: str, target_shard_bytes: int = 100_000_000,
                 max_shard_records: int | None = None):
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", split):
            raise ValueError(f"split {split!r} is not a plain file-name part")
        if target_shard_bytes < 1 or (max_shard_records is not None and max_shard_records < 1):
            raise ValueError("target_shard_bytes and max_shard_records must be positive")
        self.folder, self.split = Path(folder), split
        self.target_shard_bytes, self.max_shard_records = target_shard_bytes, max_shard_records
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tmp = self.folder / f".{split}.tfrecord.partial"
        self._writer = TFRecordWriter(self._tmp)
        self._sizes: list[int] = []
        self.shards: list[tuple[str, int, int]] | None = None  # set by close()

    def write(self, example: bytes) -> None:
        if self.shards is not None:
            raise ValueError("write to a closed ShardedWriter")
        self._sizes.append(self._writer.write(example))

    def close(self) -> list[tuple[str, int, int]]:
        """Cuts and names the shards; returns [(file name, record count, size in bytes)] in order."""
        if self.shards is not None:
            return self.shards
        self._writer.close()
        stale = re.compile(r"\.?" + re.escape(self.split) + r"-\d{5}-of-\d{5}\.tfrecord(\.partial)?")
        for path in self.folder.iterdir():
            if stale.fullmatch(path.name):
                path.unlink()
        if not self._sizes:
            self._tmp.unlink()
            self.shards = []
            return self.shards
        bounds = _balanced_bounds(self._sizes, self.target_shard_bytes, self.max_shard_records)
        offsets = [0, *itertools.accumulate(self._sizes)]
        n = len(bounds) - 1
        shards = [(f"{self.split}-{i:05d}-of-{n:05d}.tfrecord", bounds[i + 1] - bounds[i],
                   offsets[bounds[i + 1]] - offsets[bounds[i]]) for i in range(n)]
        src = os.open(self._tmp, os.O_RDWR)
        try:
            for i in range(n - 1, 0, -1):
                start = offsets[bounds[i]]
                part = self.folder / f".{shards[i][0]}.partial"
                dst = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
                try:
                    _copy_range(src, dst, start, shards[i][2])
                finally:
                    os.close(dst)
                os.replace(part, self.folder / shards[i][0])
                os.truncate(src, start)
        finally:
            os.close(src)
        os.replace(self._tmp, self.folder / shards[0][0])
        self.shards = shards
        return shards

    def abort(self) -> None:
        """Drops what was written; no shard appears."""
        self._writer.close()
        self._tmp.unlink(missing_ok=True)
        self.shards = []

    def __enter__(self) -> ShardedWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def label_map_pbtxt(spec: LabelMapSpec) -> str:
    """The TF OD API label map: `item { id: 1 name: 'cat' }` for ids 1..n, names escaped for text format."""
    escape = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r"})
    return "".join(f"item {{\n  id: {i}\n  name: '{name.translate(escape)}'\n}}\n"
                   for i, name in enumerate(spec.names, start=1))


def read_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Yields each record's data after checking both CRCs; ValueError names the offset of a bad record."""
    with open(path, "rb") as f:
        offset = 0
        while header := f.read(12):
            if len(header) < 12:
                raise ValueError(f"{path}: truncated record header at offset {offset}")
            if struct.unpack("<I", header[8:])[0] != _masked_crc(header[:8]):
                raise ValueError(f"{path}: corrupt record length at offset {offset}")
            length = struct.unpack("<Q", header[:8])[0]
            data, crc = f.read(length), f.read(4)
            if len(data) < length or len(crc) < 4:
                raise ValueError(f"{path}: truncated record at offset {offset}")
            if struct.unpack("<I", crc)[0] != _masked_crc(data):
                raise ValueError(f"{path}: corrupt record data at offset {offset}")
            yield data
            offset += length + 16
