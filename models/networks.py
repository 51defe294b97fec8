"""The Keras models of the architectures, their box loss and box IoU metric. Imports TensorFlow/Keras.

Every model is Functional with the input `image` and a dict of named outputs, so ONNX export keeps the
names and the class head can be replaced by name (`with_new_head`). Layers carry explicit names.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from models.architectures import INPUT_NAME, Architecture

PACKAGE = "loopline"


def box_iou(y_true, y_pred):
    """IoU of (ymin, xmin, ymax, xmax) boxes along the last axis; an inverted box has no area."""
    ymin = ops.maximum(y_true[..., 0], y_pred[..., 0])
    xmin = ops.maximum(y_true[..., 1], y_pred[..., 1])
    ymax = ops.minimum(y_true[..., 2], y_pred[..., 2])
    xmax = ops.minimum(y_true[..., 3], y_pred[..., 3])
    inter = ops.relu(ymax - ymin) * ops.relu(xmax - xmin)

    def area(b):
        return ops.relu(b[..., 2] - b[..., 0]) * ops.relu(b[..., 3] - b[..., 1])

    return inter / (area(y_true) + area(y_pred) - inter + 1e-7)


@keras.saving.register_keras_serializable(package=PACKAGE)
class BoxLoss(keras.losses.Loss):
    """L1 distance of the corners plus (1 - IoU): L1 gives a gradient while the boxes do not overlap,
    IoU weighs the error by the box's size."""

    def __init__(self, name: str = "box_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        return ops.mean(ops.abs(y_true - y_pred), axis=-1) + (1.0 - box_iou(y_true, y_pred))


@keras.saving.register_keras_serializable(package=PACKAGE)
class BoxIoU(keras.metrics.Mean):
    """Mean IoU of predicted and true boxes."""

    def __init__(self, name: str = "iou", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(box_iou(ops.cast(y_true, y_pred.dtype), y_pred), sample_weight)


def _backbone(x, widths: tuple[int, ...], seed: int):
    for i, width in enumerate(widths, start=1):
        x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name=f"block{i}_down",
                          kernel_initializer=keras.initializers.HeNormal(seed + i))(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{i}_conv",
                          kernel_initializer=keras.initializers.HeNormal(seed + 100 + i))(x)
    return x


def class_head(features, classes: int, seed: int):
    return layers.Dense(classes, activation="softmax", name="class_scores",
                        kernel_initializer=keras.initializers.GlorotUniform(seed + 1000))(features)


def build(architecture: Architecture, classes: int, size: int, seed: int = 0) -> keras.Model:
    """A freshly initialised model; the same (architecture, classes, size, seed) gives the same weights."""
    if classes < 1:
        raise ValueError("a model needs at least one class")
    if (why := architecture.check_size(size)) is not None:
        raise ValueError(f"input size {size} {why}")
    image = keras.Input((size, size, 3), name=INPUT_NAME)
    if architecture.name == "box_suggester":
        x = _backbone(image, (16, 32, 64, 96), seed)  # size/16 x size/16: where the object is stays visible
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(128, activation="relu", name="features",
                         kernel_initializer=keras.initializers.HeNormal(seed + 200))(x)
        box = layers.Dense(4, activation="sigmoid", name="box",
                           kernel_initializer=keras.initializers.GlorotUniform(seed + 300))(x)
        outputs = {"box": box, "class_scores": class_head(x, classes, seed)}
    elif architecture.name == "classifier":
        x = _backbone(image, (16, 32, 64, 128), seed)
        x = layers.GlobalAveragePooling2D(name="pool")(x)
        x = layers.Dense(128, activation="relu", name="features",
                         kernel_initializer=keras.initializers.HeNormal(seed + 200))(x)
        outputs = {"class_scores": class_head(x, classes, seed)}
    elif architecture.name == "detector":
        from models import detector

        outputs = detector.network(image, classes, seed)
    else:
        raise ValueError(f"no network is defined for architecture {architecture.name!r}")
    return keras.Model(image, outputs, name=architecture.name)


def with_new_head(model: keras.Model, classes: int, seed: int = 0) -> keras.Model:
    """The same model with a freshly initialised class head (`class_scores`, or the detector's `scores`) of
    `classes` units (every other layer keeps its weights): for training on a label map other than the one
    the weights learned."""
    outputs = dict(model.output)
    if "scores" in outputs:
        from models import detector

        outputs["scores"] = detector.score_head(model.get_layer("scores").input, classes, seed)
    else:
        outputs["class_scores"] = class_head(model.get_layer("class_scores").input, classes, seed)
    return keras.Model(model.inputs, outputs, name=model.name)


def compile_for(model: keras.Model, architecture: Architecture, learning_rate: float) -> keras.Model:
    if architecture.task == "detection":  # mAP is computed after each epoch (models.training), not per step
        from models import detector

        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=detector.losses())
        return model
    losses = {"class_scores": keras.losses.SparseCategoricalCrossentropy()}
    metrics = {"class_scores": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}
    if architecture.has_output("box"):  # the same test as the data pipeline's box targets
        losses["box"] = BoxLoss()
        metrics["box"] = [BoxIoU()]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses, metrics=metrics)
    return model


def output_classes(model: keras.Model) -> int:
    if "scores" in model.output:
        return int(model.get_layer("scores").filters)
    return int(model.get_layer("class_scores").units)


def input_size(model: keras.Model) -> int:
    return int(model.inputs[0].shape[1])
