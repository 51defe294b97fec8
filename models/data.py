"""The tf.data input pipeline over a dataset's TFRecord shards: parse, decode, resize, scale, batch,
prefetch. Imports TensorFlow.

Targets come from the first object of each record (suggest@ and classification@ records hold exactly
one): `class_scores` is its label id minus one (label maps count from 1), `box` its normalised
(ymin, xmin, ymax, xmax). A detector's come from every object of a detection@ record (its heatmap and
centre boxes, `models.detector.targets`); normalised boxes stay right under the stretch resize. Images are decoded and resized once and, when they fit in `cache_bytes`, kept
in memory as uint8 for the following epochs.
"""

from __future__ import annotations

import tensorflow as tf

from models.architectures import Architecture, PreprocessingSpec

_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    **{f"image/object/bbox/{k}": tf.io.VarLenFeature(tf.float32) for k in ("ymin", "xmin", "ymax", "xmax")},
    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
}
_CORNERS = ("ymin", "xmin", "ymax", "xmax")


def _boxes(ex):
    """(K, 4) normalised corners and (K,) 0-based labels of every object of a parsed record."""
    boxes = tf.stack([tf.sparse.to_dense(ex[f"image/object/bbox/{k}"]) for k in _CORNERS], axis=1)
    return boxes, tf.sparse.to_dense(ex["image/object/class/label"]) - 1


def _parser(architecture: Architecture, size: int, classes: int = 0):
    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, _FEATURES)
        image = tf.io.decode_image(ex["image/encoded"], channels=3, expand_animations=False)
        image = tf.ensure_shape(image, [None, None, 3])
        # stretched to the model's size, as inference does (suggest@/classification@ crops are square)
        image = tf.cast(tf.image.resize(image, [size, size], antialias=True), tf.uint8)
        if architecture.task == "detection":
            from models.detector import targets

            return image, targets(*_boxes(ex), size, classes)
        label = tf.sparse.to_dense(ex["image/object/class/label"])[0] - 1
        targets = {"class_scores": label}
        if architecture.has_output("box"):
            targets["box"] = tf.stack([tf.sparse.to_dense(ex[f"image/object/bbox/{k}"])[0]
                                       for k in ("ymin", "xmin", "ymax", "xmax")])
        return image, targets

    return parse


def make_dataset(files: list[str], architecture: Architecture, spec: PreprocessingSpec, batch_size: int, *,
                 records: int, shuffle: bool, seed: int = 0, cache_bytes: int = 512 << 20,
                 classes: int = 0) -> tf.data.Dataset:
    """Batches of (float32 NHWC images, {output name: target}) for `model.fit` / `model.evaluate`. With
    `shuffle` the stream repeats forever (pass `steps_per_epoch`); without, it is one pass in order. A
    detector's targets need the number of `classes`."""
    size = spec.size
    ds = tf.data.TFRecordDataset(files).map(_parser(architecture, size, classes), num_parallel_calls=tf.data.AUTOTUNE)
    if records * size * size * 3 <= cache_bytes:
        ds = ds.cache()
    if shuffle:  # training: an endless reshuffled stream; `fit` cuts it into epochs of steps_per_epoch
        ds = ds.shuffle(min(records, 10_000), seed=seed, reshuffle_each_iteration=True).repeat()
    scale, offset = spec.scale, spec.offset

    def preprocess(images, targets):
        return tf.cast(images, tf.float32) * scale + offset, targets

    ds = ds.batch(batch_size).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    # tf.data's autotuner stalled some epochs by ~1.2 s on CPU (freeing a validation iterator while it
    # tuned); without it the pipeline keeps fixed parallelism and buffers, as fast, with no stalls
    # (bench/training_rate.py)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def examples(files: list[str], size: int):
    """Every record of `files` in order as (uint8 image stretched to size x size, (K, 4) normalised boxes, (K,)
    0-based labels, width, height) in numpy: what a detector's mAP is measured on."""
    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, _FEATURES)
        image = tf.ensure_shape(tf.io.decode_image(ex["image/encoded"], channels=3, expand_animations=False),
                                [None, None, 3])
        image = tf.cast(tf.image.resize(image, [size, size], antialias=True), tf.uint8)
        return (image, *_boxes(ex), ex["image/width"], ex["image/height"])

    for image, boxes, labels, width, height in tf.data.TFRecordDataset(files).map(parse).as_numpy_iterator():
        yield image, boxes, labels, int(width), int(height)
