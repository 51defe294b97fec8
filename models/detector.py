"""The detector's Keras side: network, losses and training targets. Imports TensorFlow/Keras.

CenterNet-style, anchor-free, one stage: a small strided backbone (strides 2..16) with two top-down merges
back to stride 4, then two 1x1 heads at every location — `scores`, a per-class sigmoid heatmap whose peaks
are object centres, and `boxes`, the box of the object centred there (an offset inside the location and the
height and width, both sigmoids, turned into normalised corners by `DenseBoxes` in the graph). No anchors,
no NMS: decoding is peak picking in numpy (`models.detection`), so the ONNX graph is plain convolutions.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from models.architectures import DETECTOR_STRIDE

PACKAGE = "loopline"
PRIOR = 0.01  # initial heatmap probability (CenterNet/RetinaNet): the background dominates from the start


@keras.saving.register_keras_serializable(package=PACKAGE)
class DenseBoxes(layers.Layer):
    """(N, G, G, 4) raw head values → normalised (ymin, xmin, ymax, xmax) per location: centre = (cell +
    sigmoid offset) / G, height and width = sigmoid, as fractions of the input."""

    def __init__(self, units: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.units = units  # what the upload check reads: 4 values per location

    def call(self, raw):
        g_h, g_w = raw.shape[1], raw.shape[2]
        gy = ops.reshape(ops.arange(g_h, dtype=raw.dtype), (1, g_h, 1))
        gx = ops.reshape(ops.arange(g_w, dtype=raw.dtype), (1, 1, g_w))
        cy = (gy + ops.sigmoid(raw[..., 0])) / g_h
        cx = (gx + ops.sigmoid(raw[..., 1])) / g_w
        h, w = ops.sigmoid(raw[..., 2]), ops.sigmoid(raw[..., 3])
        return ops.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _conv(x, width: int, name: str, seed: int, strides: int = 1, kernel: int = 3):
    return layers.Conv2D(width, kernel, strides=strides, padding="same", activation="relu", name=name,
                         kernel_initializer=keras.initializers.HeNormal(seed))(x)


def network(image, classes: int, seed: int) -> dict:
    """The named outputs of a detector over the input tensor `image` (side a multiple of 16)."""
    x, skips = image, []
    for i, width in enumerate((16, 32, 64, 96), start=1):  # strides 2, 4, 8, 16
        x = _conv(x, width, f"block{i}_down", seed + i, strides=2)
        x = _conv(x, width, f"block{i}_conv", seed + 100 + i)
        skips.append(x)
    for i, skip in ((3, skips[2]), (2, skips[1])):  # top-down: 16 → 8 → 4
        up = layers.UpSampling2D(2, name=f"up{i}")(_conv(x, 64, f"top{i}", seed + 200 + i, kernel=1))
        x = layers.Add(name=f"merge{i}")([up, _conv(skip, 64, f"lateral{i}", seed + 300 + i, kernel=1)])
    features = _conv(x, 64, "features", seed + 400)
    raw = layers.Conv2D(4, 1, name="box_raw", kernel_initializer=keras.initializers.GlorotUniform(seed + 500))(features)
    return {"scores": score_head(features, classes, seed), "boxes": DenseBoxes(name="boxes")(raw)}


def score_head(features, classes: int, seed: int):
    bias = -float(ops.convert_to_numpy(ops.log((1 - PRIOR) / PRIOR)))
    return layers.Conv2D(classes, 1, activation="sigmoid", name="scores",
                         kernel_initializer=keras.initializers.GlorotUniform(seed + 1000),
                         bias_initializer=keras.initializers.Constant(bias))(features)


@keras.saving.register_keras_serializable(package=PACKAGE)
class HeatmapLoss(keras.losses.Loss):
    """CenterNet's penalty-reduced focal loss over the heatmap, per image divided by its number of objects:
    locations near a centre (Gaussian target close to 1) are punished less for firing."""

    def __init__(self, name: str = "heatmap_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, 1e-4, 1 - 1e-4)
        positive = ops.cast(y_true >= 1 - 1e-6, p.dtype)
        pos = positive * ops.square(1 - p) * ops.log(p)
        neg = (1 - positive) * ops.power(1 - y_true, 4) * ops.square(p) * ops.log(1 - p)
        count = ops.maximum(ops.sum(positive, axis=(1, 2, 3)), 1.0)
        return -ops.sum(pos + neg, axis=(1, 2, 3)) / count


@keras.saving.register_keras_serializable(package=PACKAGE)
class CentreBoxLoss(keras.losses.Loss):
    """At each object's centre location (the target's 5th channel): 5 x L1 of the corners + (1 - IoU)."""

    def __init__(self, name: str = "box_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        target, mask = y_true[..., :4], y_true[..., 4]
        from models.networks import box_iou

        per_location = 5 * ops.mean(ops.abs(target - y_pred), axis=-1) + (1 - box_iou(target, y_pred))
        return ops.sum(mask * per_location, axis=(1, 2)) / ops.maximum(ops.sum(mask, axis=(1, 2)), 1.0)


def losses() -> dict:
    return {"scores": HeatmapLoss(), "boxes": CentreBoxLoss()}


def targets(boxes, labels, size: int, classes: int) -> dict:
    """Training targets of one image (TF ops, for tf.data): `boxes` (K, 4) normalised ymin, xmin, ymax, xmax,
    `labels` (K,) 0-based. A Gaussian per object on its class's heatmap, exactly 1 at its centre location
    (sigma a sixth of its size in locations), and the box with a mask at that location."""
    grid = size // DETECTOR_STRIDE
    g = tf.cast(grid, tf.float32)
    boxes = tf.reshape(tf.cast(boxes, tf.float32), (-1, 4))
    cy, cx = (boxes[:, 0] + boxes[:, 2]) / 2 * g, (boxes[:, 1] + boxes[:, 3]) / 2 * g
    ci = tf.clip_by_value(tf.cast(tf.floor(cy), tf.int32), 0, grid - 1)
    cj = tf.clip_by_value(tf.cast(tf.floor(cx), tf.int32), 0, grid - 1)
    sy = tf.maximum((boxes[:, 2] - boxes[:, 0]) * g / 6, 0.5)
    sx = tf.maximum((boxes[:, 3] - boxes[:, 1]) * g / 6, 0.5)
    steps = tf.range(grid, dtype=tf.float32)
    dy = tf.square(steps[None, :, None] - tf.cast(ci, tf.float32)[:, None, None]) / (2 * tf.square(sy))[:, None, None]
    dx = tf.square(steps[None, None, :] - tf.cast(cj, tf.float32)[:, None, None]) / (2 * tf.square(sx))[:, None, None]
    gauss = tf.exp(-(dy + dx))  # (K, G, G)
    onehot = tf.one_hot(tf.cast(labels, tf.int32), classes)  # (K, C)
    heat = tf.concat([tf.zeros((1, grid, grid, classes)), gauss[..., None] * onehot[:, None, None, :]], axis=0)
    where = tf.stack([ci, cj], axis=1)
    box_map = tf.tensor_scatter_nd_update(tf.zeros((grid, grid, 5)), where,
                                          tf.concat([boxes, tf.ones_like(boxes[:, :1])], axis=1))
    return {"scores": tf.reduce_max(heat, axis=0), "boxes": box_map}
