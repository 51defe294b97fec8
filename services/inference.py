"""What an inference process keeps warm: onnxruntime sessions of deployments, and decoded images.

Both are per process (shared by the inference pool's threads, under a lock) and LRU. A session is loaded the
first time a deployment is asked for and kept, so a newly activated deployment is picked up by the next
request without a restart and an unchanged one is never reloaded. No TensorFlow here.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from handlers.ops import resized_crop
from models.architectures import PreprocessingSpec
from models.predictor import Predictor, spec_from, to_input
from store.schema import Deployment

MAX_SESSIONS = 4


@dataclass
class Loaded:
    deployment_id: int
    predictor: Predictor
    spec: PreprocessingSpec
    label_map: list[dict]


class Models:
    def __init__(self, runtime):
        self.rt = runtime
        self._cache: OrderedDict[int, Loaded] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, deployment_id: int) -> Loaded:
        with self._lock:
            if deployment_id in self._cache:
                self._cache.move_to_end(deployment_id)
                return self._cache[deployment_id]
        with self.rt.sessions() as session:
            d = session.get(Deployment, deployment_id)
            if d is None or d.status != "ready" or d.model_key is None:
                raise LookupError(f"deployment {deployment_id} is not ready")
            model_key, spec, label_map = d.model_key, spec_from(d.preprocessing), list(d.label_map)
        loaded = Loaded(deployment_id, Predictor(self.rt.blobs.read_bytes(model_key)), spec, label_map)
        with self._lock:
            self._cache[deployment_id] = loaded
            while len(self._cache) > MAX_SESSIONS:
                self._cache.popitem(last=False)
        return loaded


class Images:
    """Decoded RGB images by blob key, within a byte budget (width x height x 3 each)."""

    def __init__(self, runtime, budget: int):
        self.rt, self.budget = runtime, budget
        self._cache: OrderedDict[str, Image.Image] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Image.Image:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        image = decode(self.rt.blobs.read_bytes(key))
        size = image.width * image.height * 3
        with self._lock:
            if size <= self.budget and key not in self._cache:
                self._cache[key] = image
                self._bytes += size
                while self._bytes > self.budget:
                    _, old = self._cache.popitem(last=False)
                    self._bytes -= old.width * old.height * 3
        return image


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.convert("RGB")


def suggest(loaded: Loaded, image: Image.Image, region: tuple[float, float, float, float]) -> dict:
    """The tight box (image pixels), class and score the box suggester sees in `region` (l, t, r, b)."""
    size = loaded.spec.size
    crop, _ = resized_crop(image, [], region, size, size)
    start = time.perf_counter()
    out = loaded.predictor.run(to_input(crop, loaded.spec)[None])
    model_ms = (time.perf_counter() - start) * 1000
    return {"box": box_in_image(out["box"][0], region, image.width, image.height),
            **top_class(out["class_scores"][0], loaded.label_map), "model_ms": model_ms}


def box_in_image(box, region, width: int, height: int) -> dict:
    """The model's (ymin, xmin, ymax, xmax) in crop coordinates → {x, y, w, h} in pixels of the image the
    crop `region` (left, top, right, bottom) was cut from: at least 1 px, never past the image."""
    ymin, xmin, ymax, xmax = np.clip(box, 0.0, 1.0).tolist()
    ymin, ymax = sorted((ymin, ymax))
    xmin, xmax = sorted((xmin, xmax))
    left, top, right, bottom = region
    rw, rh = right - left, bottom - top
    x, y = left + xmin * rw, top + ymin * rh
    w, h = max((xmax - xmin) * rw, 1.0), max((ymax - ymin) * rh, 1.0)
    return {"x": x, "y": y, "w": min(w, width - x), "h": min(h, height - y)}


def top_class(scores, label_map: list[dict]) -> dict:
    k = int(np.argmax(scores))
    return {"class_id": label_map[k]["class_id"], "class_name": label_map[k]["name"], "score": float(scores[k])}


def detections_in_image(found, region, width: int, height: int, label_map: list[dict]) -> list[dict]:
    """`models.detection.Detection`s of an input cut from `region` (left, top, right, bottom) → [{box {x, y, w,
    h} in image pixels (at least 1 px, never past the image), class_id, class_name, score}], best first."""
    from models.detection import to_pixels

    out = []
    for d in found:
        x, y, w, h = to_pixels(d.box, region)
        x, y = min(max(x, 0.0), width - 1.0), min(max(y, 0.0), height - 1.0)
        out.append({"box": {"x": x, "y": y, "w": max(min(w, width - x), 1.0), "h": max(min(h, height - y), 1.0)},
                    "class_id": label_map[d.class_index]["class_id"], "class_name": label_map[d.class_index]["name"],
                    "score": d.score})
    return out


def detect(loaded: Loaded, image: Image.Image, threshold: float) -> dict:
    """The active detector over the whole image: its detections in image pixels, best first."""
    from models.detection import decode as decode_maps

    start = time.perf_counter()
    out = loaded.predictor.run(to_input(image, loaded.spec)[None])
    model_ms = (time.perf_counter() - start) * 1000
    found = decode_maps(out, threshold=threshold)[0]
    return {"detections": detections_in_image(found, (0.0, 0.0, float(image.width), float(image.height)),
                                              image.width, image.height, loaded.label_map), "model_ms": model_ms}
