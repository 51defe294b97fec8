"""Decoding the detector's output maps into detections: the one place every consumer uses (the training
job's per-epoch mAP, the evaluation job, pre-annotation, the detect pipeline stage, click suggestions).
Plain numpy: inference workers import it with onnxruntime only.

The exported model answers dense maps — `scores` (N, G, G, classes) and `boxes` (N, G, G, 4, normalised
ymin, xmin, ymax, xmax) — so the deploy check compares boxes and scores at every location, where a tie
between equal peaks (a black test image) cannot reorder anything. Decoding keeps the locations whose score
is the maximum of its 3x3 neighbourhood in its class (CenterNet's peak extraction, which replaces NMS),
above `threshold`, best `top_k` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLD = 0.3  # the default for proposals and pipelines
TOP_K = 100      # COCO's maxDets


@dataclass(frozen=True)
class Detection:
    class_index: int  # in label-map order (0-based)
    score: float
    box: tuple[float, float, float, float]  # ymin, xmin, ymax, xmax normalised to the input, clipped to [0, 1]

    def contains(self, y: float, x: float) -> bool:
        ymin, xmin, ymax, xmax = self.box
        return ymin <= y <= ymax and xmin <= x <= xmax


def peaks(scores: np.ndarray) -> np.ndarray:
    """True where a score is the largest of its 3x3 neighbourhood in its class; `scores` is (G, G, C)."""
    padded = np.pad(scores, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    g_h, g_w = scores.shape[:2]
    neighbourhood = np.max(np.stack([padded[dy:dy + g_h, dx:dx + g_w] for dy in range(3) for dx in range(3)]), axis=0)
    return scores >= neighbourhood


def decode_one(scores: np.ndarray, boxes: np.ndarray, *, threshold: float = THRESHOLD,
               top_k: int = TOP_K) -> list[Detection]:
    """The detections of one image: `scores` (G, G, C), `boxes` (G, G, 4)."""
    keep = peaks(scores) & (scores >= threshold)
    ys, xs, cs = np.nonzero(keep)
    values = scores[ys, xs, cs]
    order = np.argsort(-values, kind="stable")[:top_k]
    picked = np.clip(boxes[ys[order], xs[order]], 0.0, 1.0)
    return [Detection(int(cs[k]), float(values[k]), tuple(float(v) for v in box))
            for k, box in zip(order, picked, strict=True)]


def decode(outputs: dict[str, np.ndarray], *, threshold: float = THRESHOLD, top_k: int = TOP_K) -> list[list[Detection]]:
    """The detections of each image of a batch of model outputs ({"scores", "boxes"})."""
    scores, boxes = np.asarray(outputs["scores"]), np.asarray(outputs["boxes"])
    return [decode_one(s, b, threshold=threshold, top_k=top_k) for s, b in zip(scores, boxes, strict=True)]


def to_pixels(box, region: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A normalised (ymin, xmin, ymax, xmax) box of the input cut from `region` (left, top, right, bottom) of an
    image → (x, y, w, h) in that image's pixels (the input is the region stretched to a square)."""
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    left, top, right, bottom = region
    rw, rh = right - left, bottom - top
    return left + xmin * rw, top + ymin * rh, (xmax - xmin) * rw, (ymax - ymin) * rh
