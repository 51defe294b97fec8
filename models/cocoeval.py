"""COCO mAP@[.5:.95] and mAP@.5 with pycocotools' own COCOeval, overall and per class. No TensorFlow.

Ground truth and detections are plain lists per image in that image's pixels (x, y, w, h), so the training
job (validation records), the evaluation job (catalog images) and a test (a downloaded ONNX model) all
score the same way. Category ids are label-map positions (0-based).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageTruth:
    width: int
    height: int
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, w, h pixels
    labels: list[int] = field(default_factory=list)  # label-map positions


@dataclass
class ImageDetections:
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, w, h pixels
    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def coco_metrics(truth: list[ImageTruth], detections: list[ImageDetections], classes: list[str]) -> dict:
    """{"map", "map50", "images", "objects", "detections", "per_class": {name: {"map", "map50", "objects"}}}; a
    class without ground truth has None figures (COCOeval's -1), and no detection at all scores 0."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(truth) != len(detections):
        raise ValueError(f"{len(truth)} images of ground truth, {len(detections)} of detections")
    images, annotations, results = [], [], []
    for i, (t, d) in enumerate(zip(truth, detections, strict=True), start=1):
        images.append({"id": i, "width": t.width, "height": t.height})
        for box, label in zip(t.boxes, t.labels, strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label),
                                "bbox": [float(v) for v in box], "area": float(box[2] * box[3]), "iscrowd": 0})
        for box, label, score in zip(d.boxes, d.labels, d.scores, strict=True):
            results.append({"image_id": i, "category_id": int(label), "bbox": [float(v) for v in box],
                            "score": float(score)})
    counts = np.bincount([a["category_id"] for a in annotations], minlength=len(classes))
    empty = {"map": 0.0, "map50": 0.0, "images": len(images), "objects": len(annotations), "detections": len(results),
             "per_class": {name: {"map": 0.0 if counts[k] else None, "map50": 0.0 if counts[k] else None,
                                  "objects": int(counts[k])} for k, name in enumerate(classes)}}
    if not annotations or not results:
        return empty
    with contextlib.redirect_stdout(io.StringIO()):  # COCO and COCOeval print their progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": k, "name": name} for k, name in enumerate(classes)]}
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # [IoU thresholds, recall, class, area, max detections]
    per_class = {}
    for k, name in enumerate(classes):
        every, at50 = precision[:, :, k, 0, -1], precision[0, :, k, 0, -1]
        per_class[name] = {"map": _mean(every), "map50": _mean(at50), "objects": int(counts[k])}
    return {"map": _round(evaluation.stats[0]), "map50": _round(evaluation.stats[1]), "images": len(images),
            "objects": len(annotations), "detections": len(results), "per_class": per_class}


def _mean(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return _round(float(np.mean(valid))) if valid.size else None


def _round(value: float) -> float:
    return round(max(0.0, float(value)), 5)  # COCOeval's -1 (nothing to score) counts as 0


EVAL_THRESHOLD = 0.01  # COCO scores every detection; the lowest ones barely move the average


def truth_from_normalised(boxes, labels, width: int, height: int) -> ImageTruth:
    """Ground truth from normalised (ymin, xmin, ymax, xmax) boxes (a record's) in an image of width x height."""
    t = ImageTruth(width, height)
    for (ymin, xmin, ymax, xmax), label in zip(np.asarray(boxes).reshape(-1, 4), labels, strict=True):
        t.boxes.append((xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height))
        t.labels.append(int(label))
    return t


def in_pixels(found, region: tuple[float, float, float, float]) -> ImageDetections:
    """`models.detection.Detection`s of an input cut from `region` (left, top, right, bottom), in pixels."""
    from models.detection import to_pixels

    d = ImageDetections()
    for det in found:
        d.boxes.append(to_pixels(det.box, region))
        d.labels.append(det.class_index)
        d.scores.append(det.score)
    return d


def evaluate(predict, batches, classes: list[str]) -> dict:
    """COCO figures of a model: `predict` maps an input batch to its {"scores", "boxes"} maps (onnxruntime or
    Keras), `batches` yields (inputs, [ImageTruth]) with each input the whole image stretched to a square."""
    from models.detection import decode

    truth, detections = [], []
    for inputs, truths in batches:
        for found, t in zip(decode(predict(inputs), threshold=EVAL_THRESHOLD), truths, strict=True):
            truth.append(t)
            detections.append(in_pixels(found, (0.0, 0.0, float(t.width), float(t.height))))
    return coco_metrics(truth, detections, classes)
