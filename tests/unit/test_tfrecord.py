"""TFRecord writing without TensorFlow, proved against the real consumer: TensorFlow reads our shards,
parses our examples and decodes our images, and its own writer frames the same bytes we do."""

from __future__ import annotations

import hashlib
import io
import random
import re

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from google.protobuf.message_factory import GetMessageClass
from PIL import Image

from handlers.records import LabelMapSpec, Record
from handlers.tfrecord import (
    ShardedWriter,
    TFRecordWriter,
    example_bytes,
    label_map_pbtxt,
    read_records,
    record_features,
)


def _image(width: int, height: int, fmt: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt.upper())
    return out.getvalue()


def _records() -> list[Record]:
    jpeg = [_image(64 + 8 * i, 48 + 4 * i, "jpeg", i) for i in range(4)]
    return [
        Record("train", "1:v0", jpeg[0], "jpeg", 64, 48, xmin=(0.1, 0.5), xmax=(0.4, 0.9), ymin=(0.2, 0.0),
               ymax=(0.6, 1.0), labels=(1, 2), texts=("cat", "猫"),
               extra={"crop/box": [0.25, -1.5], "crop/index": [-5, 2**40, -(2**63)], "crop/tag": ["é", b"\x00b"]}),
        Record("train", "2:v0", jpeg[1], "jpeg", 72, 52, xmin=(0.3,), xmax=(0.7,), ymin=(0.3,), ymax=(0.8,),
               labels=(3,), texts=("café 'au' \\lait",),
               extra={"crop/box": ("float", []), "crop/index": 7, "crop/tag": ("bytes", [])}),
        Record("train", "3:v1", jpeg[2], "jpeg", 80, 56,
               extra={"crop/box": [1.0], "crop/index": ("int64", []), "crop/tag": "x"}),  # no boxes
        Record("train", "4:v0", _image(33, 17, "png", 9), "png", 33, 17, xmin=(0.0,), xmax=(1.0,), ymin=(0.0,),
               ymax=(1.0,), labels=(2,), texts=("猫",),
               extra={"crop/box": (0.5, 0.5), "crop/index": np.array([1, -2]), "crop/tag": [b"a", "b"]}),
        Record("train", "5:v2", jpeg[3], "jpeg", 88, 60, xmin=(0.05, 0.1, 0.2), xmax=(0.5, 0.6, 0.7),
               ymin=(0.1, 0.2, 0.3), ymax=(0.9, 0.8, 0.7), labels=(1, 1, 3), texts=("cat", "cat", "café 'au' \\lait"),
               extra={"crop/box": [2], "crop/index": [0], "crop/tag": ["z"]}),  # [2]: int → int64, see spec below
    ]


def _feature(kind: str, values) -> tf.train.Feature:
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() if isinstance(v, str) else v
                                                                     for v in values]))
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def test_example_bytes_is_what_tensorflow_serialises():
    features = {
        "b": ("bytes", [b"", b"\xff" * 300, "ünï"]), "empty/b": ("bytes", []), "empty/f": ("float", []),
        "empty/i": ("int64", []), "f": ("float", [0.1, -2.5, 3e38, 1e-40, float("inf")]),
        "i": ("int64", [0, 1, -1, 127, 128, 2**63 - 1, -(2**63)]), "z/ünicode key": ("int64", [300]),
    }
    ours = example_bytes(features)
    theirs = tf.train.Example(features=tf.train.Features(feature={k: _feature(*v) for k, v in features.items()}))
    assert tf.train.Example.FromString(ours) == theirs
    assert ours == theirs.SerializeToString(deterministic=True)  # byte for byte, map keys sorted
    assert example_bytes(dict(reversed(features.items()))) == ours


@pytest.mark.parametrize("features", [
    {"x": ("int64", [2**63])}, {"x": ("int64", [1.5])}, {"x": ("float", ["a"])}, {"x": ("float", [1e39])},
    {"x": ("bytes", [1])}, {"x": ("string", [b"a"])},
])
def test_example_bytes_refuses_what_tf_cannot_hold(features):
    with pytest.raises(ValueError, match="feature 'x'"):
        example_bytes(features)


def test_records_round_trip_through_tensorflow(tmp_path):
    records = _records()
    with ShardedWriter(tmp_path, "train", target_shard_bytes=12_000) as writer:
        for record in records:
            writer.write(example_bytes(record_features(record)))
    assert len(writer.shards) > 1  # the round trip crosses shard boundaries
    spec = {name: tf.io.FixedLenFeature([], tf.int64) for name in ("image/height", "image/width")}
    spec.update({name: tf.io.FixedLenFeature([], tf.string) for name in (
        "image/filename", "image/source_id", "image/key/sha256", "image/encoded", "image/format")})
    spec.update({f"image/object/bbox/{c}": tf.io.VarLenFeature(tf.float32) for c in ("xmin", "xmax", "ymin", "ymax")})
    spec.update({"image/object/class/text": tf.io.VarLenFeature(tf.string),
                 "image/object/class/label": tf.io.VarLenFeature(tf.int64),
                 "crop/index": tf.io.VarLenFeature(tf.int64), "crop/tag": tf.io.VarLenFeature(tf.string)})
    files = [str(tmp_path / name) for name, _, _ in writer.shards]
    parsed = list(tf.data.TFRecordDataset(files))
    assert len(parsed) == len(records)
    for raw, record in zip(parsed, records, strict=True):
        box_spec = tf.io.VarLenFeature(tf.int64 if record.source_id == "5:v2" else tf.float32)
        ex = tf.io.parse_single_example(raw, {**spec, "crop/box": box_spec})
        dense = {k: tf.sparse.to_dense(v).numpy() if isinstance(v, tf.SparseTensor) else v.numpy()
                 for k, v in ex.items()}
        image = tf.io.decode_image(dense["image/encoded"], channels=3).numpy()
        assert image.shape == (record.height, record.width, 3)
        assert (dense["image/height"], dense["image/width"]) == (record.height, record.width)
        assert dense["image/encoded"] == record.encoded
        assert dense["image/format"] == record.format.encode()
        assert dense["image/filename"] == dense["image/source_id"] == record.source_id.encode()
        assert dense["image/key/sha256"] == hashlib.sha256(record.encoded).hexdigest().encode()
        for c in ("xmin", "xmax", "ymin", "ymax"):
            np.testing.assert_allclose(dense[f"image/object/bbox/{c}"], getattr(record, c), rtol=1e-6)
        assert dense["image/object/class/label"].tolist() == list(record.labels)
        assert [t.decode() for t in dense["image/object/class/text"]] == list(record.texts)
    first = tf.io.parse_single_example(parsed[0], {**spec, "crop/box": tf.io.VarLenFeature(tf.float32)})
    assert tf.sparse.to_dense(first["crop/index"]).numpy().tolist() == [-5, 2**40, -(2**63)]
    assert tf.sparse.to_dense(first["crop/tag"]).numpy().tolist() == ["é".encode(), b"\x00b"]
    np.testing.assert_allclose(tf.sparse.to_dense(first["crop/box"]).numpy(), [0.25, -1.5])


def test_framing_is_byte_identical_to_tensorflows_writer(tmp_path):
    examples = [example_bytes(record_features(r)) for r in _records()] + [b"", b"\x00" * 70_000]
    with TFRecordWriter(tmp_path / "ours.tfrecord") as ours:
        for example in examples:
            ours.write(example)
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as theirs:
        for example in examples:
            theirs.write(example)
    data = (tmp_path / "ours.tfrecord").read_bytes()
    assert data == (tmp_path / "tf.tfrecord").read_bytes()
    assert (ours.records, ours.bytes) == (len(examples), len(data))
    assert list(read_records(tmp_path / "tf.tfrecord")) == examples


def _varied_examples(count: int, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    return [example_bytes({"payload": ("bytes", [rng.randbytes(rng.randint(500, 5000))]), "i": ("int64", [i])})
            for i in range(count)]


def _write(folder, examples, **kwargs):
    with ShardedWriter(folder, "train", **kwargs) as writer:
        for example in examples:
            writer.write(example)
    return writer.shards


def test_shards_are_balanced_named_and_complete(tmp_path):
    examples = _varied_examples(100)
    total, biggest = sum(len(e) + 16 for e in examples), max(len(e) + 16 for e in examples)
    (tmp_path / "train-00000-of-00009.tfrecord").write_bytes(b"stale")  # from an earlier attempt
    (tmp_path / "validation-00000-of-00001.tfrecord").write_bytes(b"other split")
    shards = _write(tmp_path, examples, target_shard_bytes=total // 6)
    n = len(shards)
    assert n == 7  # the fewest that meet the target
    assert [name for name, _, _ in shards] == [f"train-{i:05d}-of-00007.tfrecord" for i in range(n)]
    sizes = [size for _, _, size in shards]
    assert all(abs(size - total / n) <= biggest for size in sizes), sizes
    assert max(sizes) - min(sizes) <= 1.5 * biggest, sizes
    assert sum(count for _, count, _ in shards) == 100 and sum(sizes) == total
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [name for name, _, _ in shards] + ["validation-00000-of-00001.tfrecord"])
    read = []
    for name, count, size in shards:
        assert (tmp_path / name).stat().st_size == size
        records = list(read_records(tmp_path / name))
        assert len(records) == count
        read += records
    assert read == examples  # in order across shards


def test_max_records_per_shard_and_edge_cases(tmp_path):
    shards = _write(tmp_path / "a", _varied_examples(10), max_shard_records=3)
    counts = [count for _, count, _ in shards]
    assert len(counts) == 4 and max(counts) <= 3 and sum(counts) == 10
    big = _write(tmp_path / "b", _varied_examples(3), target_shard_bytes=10)  # records bigger than the target
    assert [count for _, count, _ in big] == [1, 1, 1]
    assert _write(tmp_path / "c", []) == [] and list((tmp_path / "c").iterdir()) == []
    with pytest.raises(RuntimeError), ShardedWriter(tmp_path / "d", "train") as writer:
        writer.write(b"x")
        raise RuntimeError("the build failed")
    assert list((tmp_path / "d").iterdir()) == []
    with pytest.raises(ValueError):
        ShardedWriter(tmp_path, "../train")


def test_same_records_give_identical_files(tmp_path):
    examples = [example_bytes(record_features(r)) for r in _records()] + _varied_examples(30)
    first = _write(tmp_path / "1", examples, target_shard_bytes=20_000)
    second = _write(tmp_path / "2", [example_bytes(record_features(r)) for r in _records()] + _varied_examples(30),
                    target_shard_bytes=20_000)
    assert first == second
    for name, _, _ in first:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()


def test_read_records_names_the_corrupt_offset(tmp_path):
    examples = _varied_examples(3)
    path = tmp_path / "x.tfrecord"
    with TFRecordWriter(path) as writer:
        for example in examples:
            writer.write(example)
    good = path.read_bytes()
    second = len(examples[0]) + 16
    for flip, what in ((second + 20, "data"), (second + 2, "length")):
        bad = bytearray(good)
        bad[flip] ^= 0x01
        path.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match=f"corrupt record {what} at offset {second}"):
            list(read_records(path))
    path.write_bytes(good[:-3])
    with pytest.raises(ValueError, match="truncated"):
        list(read_records(path))


def test_record_features_refuses_inconsistent_records():
    image = b"\xff\xd8"
    with pytest.raises(ValueError, match="xmax"):
        record_features(Record("train", "1", image, "jpeg", 1, 1, xmin=(0.1,), xmax=(), ymin=(0.1,), ymax=(0.2,),
                               labels=(1,), texts=("a",)))
    with pytest.raises(ValueError, match="image/format"):
        record_features(Record("train", "1", image, "jpg", 1, 1))
    with pytest.raises(ValueError, match="empty list"):
        record_features(Record("train", "1", image, "jpeg", 1, 1, extra={"crop/box": []}))
    with pytest.raises(ValueError, match="replace"):
        record_features(Record("train", "1", image, "jpeg", 1, 1, extra={"image/width": [2]}))
    with pytest.raises(ValueError, match="infer"):
        record_features(Record("train", "1", image, "jpeg", 1, 1, extra={"mixed": [1, "a"]}))


def test_label_map_pbtxt_parses_as_the_od_api_proto():
    spec = LabelMapSpec(names=("cat", "it's", "back\\slash", "猫"))
    text = label_map_pbtxt(spec)
    items = re.findall(r"item \{\n  id: (\d+)\n  name: '((?:[^'\\]|\\.)*)'\n\}\n", text)
    assert "".join(f"item {{\n  id: {i}\n  name: '{n}'\n}}\n" for i, n in items) == text
    assert [int(i) for i, _ in items] == [1, 2, 3, 4]
    # the OD API reads it with text_format into StringIntLabelMap; build that message type here
    proto = descriptor_pb2.FileDescriptorProto(name="label_map_test.proto", package="lltest")
    item = proto.message_type.add(name="StringIntLabelMapItem")
    item.field.add(name="name", number=1, type=9, label=1)
    item.field.add(name="id", number=2, type=5, label=1)
    label_map = proto.message_type.add(name="StringIntLabelMap")
    label_map.field.add(name="item", number=1, type=11, label=3, type_name=".lltest.StringIntLabelMapItem")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    message = text_format.Parse(text, GetMessageClass(pool.FindMessageTypeByName("lltest.StringIntLabelMap"))())
    assert [(i.id, i.name) for i in message.item] == list(enumerate(spec.names, start=1))
