"""The training loop: `model.fit` over tf.data with a callback that reports progress every N steps,
hands each finished epoch to the caller (who saves it), and applies early stopping whose state survives
a restart. Imports TensorFlow/Keras.

Resuming: the caller saves the compiled model (weights and optimizer state) after every epoch; a restart
loads it and calls `fit` with `initial_epoch` = the epochs already done, with the saved `EarlyStopping`
state. Cancel: any exception raised by the step hook (e.g. the job's cancel) propagates out of `fit`
between two steps; the last finished epoch's file is the caller's result.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import keras


@dataclass
class EarlyStopping:
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs. Plain data, so the
    caller can persist it next to the epoch's weights."""

    patience: int
    min_delta: float = 0.0
    monitor: str = "val_loss"
    best: float | None = None
    best_epoch: int = 0
    wait: int = 0

    def update(self, epoch: int, logs: dict) -> bool:
        """Record epoch `epoch` (1-based); True when training should stop."""
        value = logs.get(self.monitor)
        if value is None:
            return False
        if self.best is None or value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            return False
        self.wait += 1
        return self.wait >= self.patience

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepReport:
    epoch: int           # 1-based, the epoch running
    epochs: int
    step: int            # 1-based step within the epoch
    steps: int           # steps per epoch
    logs: dict           # running means of loss and metrics in this epoch
    samples_per_s: float
    eta_s: float

    @property
    def fraction(self) -> float:
        return ((self.epoch - 1) * self.steps + self.step) / (self.epochs * self.steps)


class Reporter(keras.callbacks.Callback):
    """Calls `on_step(report)` every `every` steps and at each epoch's last step, `tick()` after every
    step (cheap; may raise to stop), and `on_epoch(epoch, logs, seconds, samples_per_s, stop)` after
    each epoch, where `stop` says early stopping ends the run here. `epoch_metrics()` adds figures that
    Keras does not compute to each epoch's logs (a detector's validation mAP), before early stopping reads them."""

    def __init__(self, *, epochs: int, steps: int, batch_size: int, every: int,
                 on_step: Callable[[StepReport], None], on_epoch: Callable[..., None],
                 tick: Callable[[], None] = lambda: None, early_stopping: EarlyStopping | None = None,
                 epoch_metrics: Callable[[], dict] | None = None):
        super().__init__()
        self.epoch_metrics = epoch_metrics
        self.epochs, self.steps, self.batch_size = epochs, steps, batch_size
        self.every, self.on_step, self.on_epoch, self.tick = max(1, every), on_step, on_epoch, tick
        self.early_stopping = early_stopping
        self._epoch = 0
        self._epoch_start = self._window_start = 0.0
        self._window_samples = 0
        self._rate = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_start = self._window_start = time.perf_counter()
        self._window_samples = 0

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        last = step == self.steps
        self._window_samples += self.batch_size
        self.tick()
        if step % self.every and not last:
            return
        now = time.perf_counter()
        if now > self._window_start:
            self._rate = self._window_samples / (now - self._window_start)
        self._window_start, self._window_samples = now, 0
        left = (self.epochs - self._epoch) * self.steps + (self.steps - step)
        eta = left * self.batch_size / self._rate if self._rate else math.nan
        self.on_step(StepReport(self._epoch, self.epochs, step, self.steps, dict(logs or {}),
                                round(self._rate, 1), round(eta, 1)))

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_start
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.epoch_metrics is not None:
            logs.update(self.epoch_metrics())
        stop = bool(self.early_stopping and self.early_stopping.update(epoch + 1, logs))
        samples = self.steps * self.batch_size
        self.on_epoch(epoch + 1, logs, seconds, samples / seconds if seconds else 0.0, stop)
        if stop:
            self.model.stop_training = True


def steps_per_epoch(records: int, batch_size: int) -> int:
    return max(1, math.ceil(records / batch_size))


def fit(model: keras.Model, train, validation, *, epochs: int, initial_epoch: int, reporter: Reporter):
    """`train` is the endless stream of `models.data.make_dataset(shuffle=True)`: an epoch is
    `reporter.steps` batches (one pass over the records, the last batch topped up from the next pass)."""
    with _finite_passes():
        return model.fit(train, validation_data=validation, epochs=epochs, initial_epoch=initial_epoch,
                         steps_per_epoch=reporter.steps, callbacks=[reporter], shuffle=False, verbose=0)


def evaluate(model: keras.Model, dataset) -> dict[str, float]:
    """Validation metrics with the `val_` prefix `fit` gives them."""
    with _finite_passes():
        logs = model.evaluate(dataset, verbose=0, return_dict=True)
    return {f"val_{k}": float(v) for k, v in logs.items()}


def detection_metrics(model: keras.Model, examples: list, classes: list[str], spec, batch_size: int = 32) -> dict:
    """`val_map` (COCO mAP@[.5:.95]) and `val_map50` of a detector on `examples` (`models.data.examples`), by
    pycocotools' COCOeval, decoded by `models.detection` like every deployed consumer."""
    import numpy as np

    from models.cocoeval import evaluate, truth_from_normalised

    def batches():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            inputs = np.stack([image for image, *_ in chunk]).astype(np.float32) * spec.scale + spec.offset
            yield inputs, [truth_from_normalised(b, lab, w, h) for _, b, lab, w, h in chunk]

    def predict(inputs):
        return {k: np.asarray(v) for k, v in model.predict_on_batch(inputs).items()}

    figures = evaluate(predict, batches(), classes)
    return {"val_map": figures["map"], "val_map50": figures["map50"]}


@contextlib.contextmanager
def _finite_passes():
    """Keras warns "ran out of data" at the end of every one-pass (validation) dataset: that is the point."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield


def device() -> dict:
    """Where training runs: the first GPU TensorFlow sees, or the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:  # take GPU memory as needed, not all of it at the first op
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised by an earlier run in this process
            pass
    if not gpus:
        return {"kind": "CPU", "name": "CPU (no GPU visible to TensorFlow)", "gpus": 0}
    details = tf.config.experimental.get_device_details(gpus[0])
    return {"kind": "GPU", "name": details.get("device_name", gpus[0].name), "gpus": len(gpus)}


def load(path: str, *, compile: bool) -> keras.Model:
    """A saved `.keras` model; `compile=True` keeps its optimizer state (to resume training)."""
    import models.detector  # noqa: F401 - registers the detector's box layer and losses
    import models.networks  # noqa: F401 - registers the custom loss and metric for deserialisation

    return keras.models.load_model(path, compile=compile, safe_mode=True)
