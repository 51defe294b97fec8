"""models/ alone: architectures, the tf.data pipeline, the training loop and resuming, the file check.
Real TensorFlow on the CPU, data made by the real handlers."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest

from models.architectures import ARCHITECTURES, UnknownArchitecture, get_architecture
from models.keras_file import InvalidModelFile, check_keras_file
from tests.support.modeltree import keras_file
from tests.support.shards import write_shards

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from models import data, networks, training  # noqa: E402 - after the TensorFlow check

SUGGESTER = get_architecture("box_suggester")
CLASSIFIER = get_architecture("classifier")


@pytest.fixture(scope="module")
def suggest_shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("suggest"), "suggest@1", {"size": 64, "regions": 6}, images=30)


def test_registry_describes_architectures():
    assert set(ARCHITECTURES) >= {"box_suggester", "classifier"}
    described = SUGGESTER.describe()
    assert described["handlers"] == ["suggest"] and [o["name"] for o in described["outputs"]] == ["box", "class_scores"]
    assert described["preprocessing"] == {"input": "image", "size": 128, "channel_order": "RGB", "layout": "NHWC",
                                          "dtype": "float32", "scale": 1 / 255, "offset": 0.0, "resize": "stretch"}
    with pytest.raises(UnknownArchitecture, match="available: box_suggester, classifier"):
        get_architecture("resnet")
    assert SUGGESTER.check_size(100) and SUGGESTER.check_size(64) is None


def test_networks_have_named_io_and_reproducible_init():
    a = networks.build(SUGGESTER, 3, 64, seed=7)
    b = networks.build(SUGGESTER, 3, 64, seed=7)
    c = networks.build(SUGGESTER, 3, 64, seed=8)
    assert [i.name for i in a.inputs] == ["image"] and sorted(a.output) == ["box", "class_scores"]
    out = a.predict(np.zeros((2, 64, 64, 3), np.float32), verbose=0)
    assert out["box"].shape == (2, 4) and out["class_scores"].shape == (2, 3)
    np.testing.assert_allclose(out["class_scores"].sum(axis=1), 1, rtol=1e-5)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    assert not all(np.array_equal(x, y) for x, y in zip(a.get_weights(), c.get_weights()))
    classifier = networks.build(CLASSIFIER, 5, 64)
    assert sorted(classifier.output) == ["class_scores"] and networks.output_classes(classifier) == 5


def test_new_head_keeps_the_rest():
    model = networks.build(SUGGESTER, 2, 64, seed=1)
    wider = networks.with_new_head(model, 4, seed=1)
    assert networks.output_classes(wider) == 4 and sorted(wider.output) == ["box", "class_scores"]
    x = np.random.default_rng(0).random((1, 64, 64, 3), np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0)["box"], wider.predict(x, verbose=0)["box"], atol=1e-6)


def test_box_iou():
    t = np.array([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.4, 0.4], [0.0, 0.0, 1.0, 1.0]], np.float32)
    p = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.6, 0.6], [0.0, 0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_allclose(np.asarray(networks.box_iou(t, p)), [1.0, 0.0, 0.5], atol=1e-5)
    inverted = np.array([[0.5, 0.5, 0.0, 0.0]], np.float32)  # ymax < ymin: no area, IoU 0
    assert float(np.asarray(networks.box_iou(t[:1], inverted))[0]) == 0.0


def test_pipeline_gives_scaled_images_and_targets(suggest_shards):
    files, records = suggest_shards["train"]
    ds = data.make_dataset(files, SUGGESTER, SUGGESTER.spec(64), 8, records=records, shuffle=False)
    images, targets = next(iter(ds))
    assert images.shape == (8, 64, 64, 3) and images.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert set(targets) == {"box", "class_scores"} and targets["box"].shape == (8, 4)
    assert set(targets["class_scores"].numpy()) <= {0, 1}  # label ids 1..2 become class indices 0..1
    boxes = targets["box"].numpy()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert sum(int(b[0].shape[0]) for b in ds) == records  # one pass, in order


def _train(model, shards, epochs, initial_epoch=0, tick=lambda: None, every=2, stopper=None):
    (train_files, n_train), (val_files, n_val) = shards["train"], shards["validation"]
    spec = SUGGESTER.spec(64)
    train = data.make_dataset(train_files, SUGGESTER, spec, 16, records=n_train, shuffle=True)
    val = data.make_dataset(val_files, SUGGESTER, spec, 32, records=n_val, shuffle=False)
    steps, epochs_seen, reports = training.steps_per_epoch(n_train, 16), [], []
    reporter = training.Reporter(epochs=epochs, steps=steps, batch_size=16, every=every,
                                 on_step=reports.append, on_epoch=lambda *a: epochs_seen.append(a), tick=tick,
                                 early_stopping=stopper)
    training.fit(model, train, val, epochs=epochs, initial_epoch=initial_epoch, reporter=reporter)
    return reports, epochs_seen, training.evaluate(model, val)


def test_training_learns_boxes_and_reports(suggest_shards):
    model = networks.compile_for(networks.build(SUGGESTER, 2, 64, seed=0), SUGGESTER, 2e-3)
    val_files, n_val = suggest_shards["validation"]
    before = training.evaluate(model, data.make_dataset(val_files, SUGGESTER, SUGGESTER.spec(64), 32,
                                                          records=n_val, shuffle=False))
    reports, epochs, after = _train(model, suggest_shards, epochs=4)
    print(f"validation box IoU untrained {before['val_box_iou']:.3f} -> trained {after['val_box_iou']:.3f}")
    assert after["val_box_iou"] > before["val_box_iou"] + 0.25
    assert [e[0] for e in epochs] == [1, 2, 3, 4] and all("val_box_iou" in e[1] for e in epochs)
    steps = reports[0].steps
    assert [(r.epoch, r.step) for r in reports if r.epoch == 1][-1] == (1, steps)
    assert all(r.samples_per_s > 0 and "loss" in r.logs for r in reports)
    assert reports[-1].fraction == 1.0 and reports[-1].eta_s == 0.0 and not math.isnan(reports[0].eta_s)


def test_resume_from_a_saved_epoch_continues_the_optimizer(suggest_shards, tmp_path):
    model = networks.compile_for(networks.build(SUGGESTER, 2, 64, seed=0), SUGGESTER, 1e-3)
    _train(model, suggest_shards, epochs=1)
    model.save(tmp_path / "epoch1.keras")
    resumed = training.load(str(tmp_path / "epoch1.keras"), compile=True)
    assert int(resumed.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
    _, epochs, _ = _train(resumed, suggest_shards, epochs=2, initial_epoch=1)
    assert [e[0] for e in epochs] == [2]


def test_an_exception_from_the_step_hook_stops_between_steps(suggest_shards):
    model = networks.compile_for(networks.build(SUGGESTER, 2, 64), SUGGESTER, 1e-3)
    calls = []

    def tick():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("cancel")

    with pytest.raises(KeyboardInterrupt):
        _train(model, suggest_shards, epochs=3, tick=tick)
    assert len(calls) == 3 and int(model.optimizer.iterations.numpy()) == 3


def test_early_stopping_state():
    stop = training.EarlyStopping(patience=2, min_delta=0.01)
    assert [stop.update(e, {"val_loss": v}) for e, v in enumerate([1.0, 0.9, 0.895, 0.91], start=1)] == [
        False, False, False, True]
    assert stop.best == 0.9 and stop.best_epoch == 2
    again = training.EarlyStopping(**stop.to_dict())
    assert again == stop and not training.EarlyStopping(patience=1).update(1, {"loss": 1.0})


def test_keras_file_check(tmp_path):
    good = keras_file(networks.build(SUGGESTER, 2, 64), tmp_path)
    info = check_keras_file(io.BytesIO(good), SUGGESTER, 2)
    assert info.size == 64 and info.keras_version == keras.__version__
    cases = {
        "not a readable .keras file": (b"hello", SUGGESTER, 2),
        "may be truncated": (good[: len(good) // 2] + bytes(len(good) - len(good) // 2), SUGGESTER, 2),
        "outputs \\['box', 'class_scores'\\]; the file's are \\['class_scores'\\]":
            (keras_file(networks.build(CLASSIFIER, 2, 64), tmp_path), SUGGESTER, 2),
        "must have 3 units \\(3 classes of the label map\\); the file's has 2": (good, SUGGESTER, 3),
        "must be a Functional": (keras_file(keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Dense(2)]), tmp_path),
                                 SUGGESTER, 2),
    }
    for message, (blob, arch, classes) in cases.items():
        with pytest.raises(InvalidModelFile, match=message):
            check_keras_file(io.BytesIO(blob), arch, classes)
    flipped = bytearray(good)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        start = zf.getinfo("model.weights.h5").header_offset + 200
    flipped[start] ^= 0xFF
    with pytest.raises(InvalidModelFile, match="corrupt"):
        check_keras_file(io.BytesIO(bytes(flipped)), SUGGESTER, 2)


def test_the_api_and_other_pools_never_import_tensorflow(tmp_path):
    """The API (which checks uploads and lists architectures) and every worker module load without it."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from store.settings import load_settings; from api import create_app; "
            f"create_app(load_settings(data_dir={str(tmp_path)!r})); "
            "from workers.celery_app import TASK_MODULES; import importlib; "
            "[importlib.import_module(m) for m in TASK_MODULES]; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'onnx', 'tf2onnx'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not tf.config.list_physical_devices("GPU"), reason="no GPU visible to TensorFlow")
def test_training_runs_on_the_gpu_where_there_is_one(suggest_shards):
    """The CPU path is the rest of this file; here the same loop must land on the GPU and say so."""
    reported = training.device()
    assert reported["kind"] == "GPU" and reported["gpus"] >= 1 and reported["name"]
    model = networks.compile_for(networks.build(SUGGESTER, 2, 64), SUGGESTER, 1e-3)
    _train(model, suggest_shards, epochs=1)
    assert "GPU" in model.get_layer("box").kernel.value.device.upper()
