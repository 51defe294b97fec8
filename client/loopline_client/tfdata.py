"""A downloaded dataset folder as a `tf.data.Dataset` of plain tensors.

TensorFlow is imported inside the functions: the rest of the client (and `lloop dataset get`) must
work on machines without it. Boxes come out in the TF Object Detection API's order (ymin, xmin, ymax,
xmax), normalised to [0, 1] as the shards store them, so they feed OD API style models unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BOX_ORDER = ("ymin", "xmin", "ymax", "xmax")


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def label_names(folder: str | os.PathLike) -> list[str]:
    """Class names in label-map order: label id i (1-based, as in label_map.pbtxt) is names[i - 1]."""
    return list(_manifest(Path(folder))["label_map"]["classes"])


def shard_files(folder: str | os.PathLike, split: str = "train") -> list[str]:
    """The split's TFRecord shards, in order, as the manifest lists them (an empty split has none)."""
    folder = Path(folder)
    manifest = _manifest(folder)
    splits = manifest.get("records", {})
    if split not in splits:
        raise ValueError(f"{folder} has no split {split!r}; it has {sorted(splits)}")
    prefix = f"data/{split}-"
    return [str(folder / name) for name in sorted(manifest["files"]) if name.startswith(prefix)]


def _tf():
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ImportError("loopline_client.tfdata needs TensorFlow: pip install 'loopline-client[tf]' "
                          "(or ./client[tf] from a checkout)") from exc
    return tf


def _features():
    tf = _tf()

    return {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/source_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
        **{f"image/object/bbox/{k}": tf.io.VarLenFeature(tf.float32) for k in BOX_ORDER},
        "image/object/class/label": tf.io.VarLenFeature(tf.int64),
        "image/object/class/text": tf.io.VarLenFeature(tf.string),
    }


def load_dataset(folder: str | os.PathLike, split: str = "train", *, decode: bool = True):
    """Records of `split` as dicts: image (uint8 HxWx3 when `decode`, else the encoded bytes), boxes
    (N x 4 float32, ymin xmin ymax xmax), labels (int64 N), texts (string N), source_id, width, height.
    Parsing runs in parallel; the order of records is kept (deterministic)."""
    tf = _tf()

    features = _features()

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, features)
        dense = {k: tf.sparse.to_dense(v) for k, v in ex.items() if isinstance(v, tf.SparseTensor)}
        out = {
            "boxes": tf.reshape(tf.stack([dense[f"image/object/bbox/{k}"] for k in BOX_ORDER], axis=1), [-1, 4]),
            "labels": dense["image/object/class/label"],
            "texts": dense["image/object/class/text"],
            "source_id": ex["image/source_id"],
            "width": ex["image/width"],
            "height": ex["image/height"],
        }
        if decode:
            image = tf.io.decode_image(ex["image/encoded"], channels=3, dtype=tf.uint8, expand_animations=False)
            out["image"] = tf.ensure_shape(image, [None, None, 3])
        else:
            out["image"] = ex["image/encoded"]
        return out

    files = tf.constant(shard_files(folder, split), dtype=tf.string)
    return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
