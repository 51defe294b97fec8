"""The detector alone: architecture entry, network, targets, numpy decoding, COCO figures, training that
learns, an ONNX export that agrees with Keras. Real TensorFlow on the CPU, data made by the real handlers."""

from __future__ import annotations

import numpy as np
import pytest

from models.architectures import get_architecture
from models.cocoeval import ImageDetections, ImageTruth, coco_metrics
from models.detection import Detection, decode, decode_one, peaks, to_pixels
from models.keras_file import InvalidModelFile, check_keras_file
from tests.support.modeltree import keras_file
from tests.support.shards import write_shards

DETECTOR = get_architecture("detector")
CLASSES = ["cat", "dog"]


def test_the_architecture_entry():
    described = DETECTOR.describe()
    assert described["task"] == "detection" and described["handlers"] == ["detection"]
    assert [o["name"] for o in described["outputs"]] == ["scores", "boxes"] and DETECTOR.head == "scores"
    assert described["preprocessing"]["resize"] == "stretch" and described["input"]["default_size"] == 128
    assert DETECTOR.check_size(96) is None and DETECTOR.check_size(48) and DETECTOR.check_size(100)


def test_decode_picks_peaks_above_the_threshold_best_first():
    scores = np.zeros((8, 8, 2), np.float32)
    scores[2, 2, 0], scores[2, 3, 0] = 0.9, 0.5  # a peak and its weaker neighbour (not a peak)
    scores[6, 5, 1] = 0.7
    scores[0, 7, 1] = 0.2  # under the threshold
    boxes = np.zeros((8, 8, 4), np.float32)
    boxes[2, 2] = [0.1, 0.2, 0.4, 0.5]
    boxes[6, 5] = [0.6, 0.5, 1.3, 0.9]  # clipped to the input
    assert peaks(scores)[2, 2, 0] and not peaks(scores)[2, 3, 0]
    found = decode_one(scores, boxes, threshold=0.3)
    assert [(d.class_index, round(d.score, 3)) for d in found] == [(0, 0.9), (1, 0.7)]
    assert found[0].box == pytest.approx((0.1, 0.2, 0.4, 0.5)) and found[1].box == pytest.approx((0.6, 0.5, 1.0, 0.9))
    assert [len(d) for d in decode({"scores": scores[None], "boxes": boxes[None]}, threshold=0.1, top_k=2)] == [2]
    assert found[0].contains(0.2, 0.3) and not found[0].contains(0.5, 0.3)
    assert to_pixels((0.1, 0.2, 0.4, 0.5), (10, 20, 110, 220)) == pytest.approx((30, 40, 30, 60))


def test_coco_figures_by_cocoeval():
    truth = [ImageTruth(100, 80, [(10, 10, 30, 20), (50, 40, 20, 30)], [0, 1]), ImageTruth(100, 80, [(5, 5, 40, 40)], [0])]
    perfect = [ImageDetections(list(t.boxes), list(t.labels), [0.9] * len(t.boxes)) for t in truth]
    figures = coco_metrics(truth, perfect, CLASSES + ["bird"])
    assert figures["map"] == 1.0 and figures["map50"] == 1.0 and figures["objects"] == 3
    assert figures["per_class"]["cat"] == {"map": 1.0, "map50": 1.0, "objects": 2}
    assert figures["per_class"]["bird"] == {"map": None, "map50": None, "objects": 0}
    shifted = [ImageDetections([(x + w * 0.3, y, w, h) for x, y, w, h in t.boxes], list(t.labels), [0.9] * len(t.boxes))
               for t in truth]
    loose = coco_metrics(truth, shifted, CLASSES)
    assert loose["map50"] == 1.0 and 0 < loose["map"] < 0.6  # IoU ~0.54: counted at .5 only
    assert coco_metrics(truth, [ImageDetections(), ImageDetections()], CLASSES)["map"] == 0.0


tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from models import data, detector, export, networks, training  # noqa: E402 - after the TensorFlow check


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("detection"), "detection@1",
                        {"size": 128, "variations": 2, "crop": 0.2}, images=60)


def test_network_named_io_reproducible_and_checked_on_upload(tmp_path):
    a = networks.build(DETECTOR, 2, 64, seed=3)
    b = networks.build(DETECTOR, 2, 64, seed=3)
    assert [i.name for i in a.inputs] == ["image"] and sorted(a.output) == ["boxes", "scores"]
    out = a.predict(np.zeros((2, 64, 64, 3), np.float32), verbose=0)
    assert out["scores"].shape == (2, 16, 16, 2) and out["boxes"].shape == (2, 16, 16, 4)
    assert float(out["scores"].max()) < 0.2  # the prior: background everywhere at first
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    assert networks.output_classes(a) == 2 and networks.output_classes(networks.with_new_head(a, 3)) == 3
    blob = keras_file(a, tmp_path)
    import io

    assert check_keras_file(io.BytesIO(blob), DETECTOR, 2).size == 64
    with pytest.raises(InvalidModelFile, match="output 'scores' must have 3 units"):
        check_keras_file(io.BytesIO(blob), DETECTOR, 3)
    loaded = training.load(str(tmp_path / f"{a.name}-{id(a)}.keras"), compile=False)
    np.testing.assert_allclose(loaded.predict(np.ones((1, 64, 64, 3), np.float32), verbose=0)["boxes"],
                               a.predict(np.ones((1, 64, 64, 3), np.float32), verbose=0)["boxes"], atol=1e-6)


def test_targets_put_a_peak_and_the_box_at_each_centre():
    t = detector.targets(tf.constant([[0.0, 0.0, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0]]), tf.constant([1, 0]), 64, 2)
    heat, box = t["scores"].numpy(), t["boxes"].numpy()
    assert heat.shape == (16, 16, 2) and box.shape == (16, 16, 5)
    assert heat[4, 2, 1] == 1.0 and heat[12, 12, 0] == 1.0 and heat[4, 2, 0] < 0.01 and heat.max() == 1.0
    np.testing.assert_allclose(box[4, 2], [0, 0, 0.5, 0.25, 1])
    assert box[..., 4].sum() == 2
    empty = detector.targets(tf.zeros((0, 4)), tf.zeros((0,), tf.int64), 64, 2)
    assert empty["scores"].numpy().max() == 0 and empty["boxes"].numpy().sum() == 0


def test_training_raises_validation_map_and_onnx_agrees(shards, tmp_path):
    spec = DETECTOR.spec(96)
    model = networks.compile_for(networks.build(DETECTOR, 2, 96, seed=0), DETECTOR, 2e-3)
    (train_files, train_n), (val_files, val_n) = shards["train"], shards["validation"]
    train_ds = data.make_dataset(train_files, DETECTOR, spec, 16, records=train_n, shuffle=True, classes=2)
    examples = list(data.examples(val_files, 96))
    assert len(examples) == val_n and examples[0][0].shape == (96, 96, 3)
    before = training.detection_metrics(model, examples, CLASSES, spec)
    model.fit(train_ds, epochs=8, steps_per_epoch=training.steps_per_epoch(train_n, 16), verbose=0)
    after = training.detection_metrics(model, examples, CLASSES, spec)
    print(f"validation mAP@.5 {before['val_map50']:.3f} -> {after['val_map50']:.3f}, "
          f"mAP {before['val_map']:.3f} -> {after['val_map']:.3f}")
    assert after["val_map50"] > before["val_map50"] + 0.4 and after["val_map"] > before["val_map"] + 0.2

    onnx_path = tmp_path / "detector.onnx"
    export.export_onnx(model, onnx_path)
    samples = export.sample_inputs(96)
    diff = export.max_difference(model, onnx_path, samples)
    print(f"max |ONNX - Keras| {diff:.2e}")
    assert diff < 1e-4
    from models.predictor import Predictor

    inputs = np.stack([e[0] for e in examples[:4]]).astype(np.float32) / 255
    onnx_found = decode(Predictor(onnx_path.read_bytes()).run(inputs))
    keras_found = decode(model.predict(inputs, verbose=0))
    assert [[d.class_index for d in img] for img in onnx_found] == [[d.class_index for d in img] for img in keras_found]
    assert all(np.allclose(a.box, b.box, atol=1e-4) for x, y in zip(onnx_found, keras_found) for a, b in zip(x, y))
    assert all(isinstance(d, Detection) for img in onnx_found for d in img) and any(onnx_found)
