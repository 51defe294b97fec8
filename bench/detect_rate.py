"""The detector's inference rates (one run, same model, same inputs on both sides of each ratio).

* onnxruntime against Keras: a fresh `detector` (`networks.build`, 2 classes, size S, seed 0) exported to ONNX
  with `models.export.export_onnx`; batches of B inputs from generated scenes; onnxruntime through
  `models.predictor.Predictor` (1 intra-op thread, as the inference pool runs it) against Keras
  `predict_on_batch` (TensorFlow's default threads), each timed over R rounds after a warm-up; the ratio of
  images/s is printed (target >= 5x).
* the in-process pre-annotation loop: the same ONNX model over N decoded scenes as `services.preannotate.run`
  does it (`to_input`, `Predictor.run` in batches of 8, `models.detection.decode`), images/s — the baseline
  the pre-annotation job is to be compared against (target: job >= 0.8 of it). The job side is not
  measured here yet (it needs the stack: an inference worker and a deployment, as bench/suggest_latency.py
  starts them).

    .venv/bin/python bench/detect_rate.py [--size 128] [--batch 8] [--rounds 20] [--images 200]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.architectures import get_architecture  # noqa: E402
from models.detection import decode  # noqa: E402
from models.predictor import Predictor, to_input  # noqa: E402
from tests.support.scenes import layout, scene  # noqa: E402


def rate(fn, batch: np.ndarray, rounds: int) -> float:
    fn(batch)
    start = time.perf_counter()
    for _ in range(rounds):
        fn(batch)
    return rounds * len(batch) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--images", type=int, default=200)
    args = ap.parse_args()
    from models import export, networks

    detector = get_architecture("detector")
    spec = detector.spec(args.size)
    model = networks.build(detector, 2, args.size, seed=0)
    path = Path(tempfile.mkdtemp()) / "detector.onnx"
    export.export_onnx(model, path)
    predictor = Predictor(path.read_bytes())
    images = [Image.open(io.BytesIO(scene(160, 120, layout(i)))).convert("RGB") for i in range(args.images)]
    batch = np.stack([to_input(im, spec) for im in images[:args.batch]])
    onnx = rate(predictor.run, batch, args.rounds)
    keras = rate(model.predict_on_batch, batch, args.rounds)
    print(f"onnxruntime {onnx:.1f} img/s, Keras predict_on_batch {keras:.1f} img/s: {onnx / keras:.1f}x (target >= 5x)")

    start = time.perf_counter()
    found = 0
    for i in range(0, len(images), 8):
        inputs = np.stack([to_input(im, spec) for im in images[i:i + 8]])
        found += sum(len(d) for d in decode(predictor.run(inputs), threshold=0.3))
    loop = len(images) / (time.perf_counter() - start)
    print(f"in-process pre-annotation loop: {loop:.1f} img/s over {len(images)} decoded images ({found} detections)")


if __name__ == "__main__":
    main()
