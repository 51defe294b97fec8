"""onnxruntime inference for deployed models, and the preprocessing their spec declares. No TensorFlow:
inference workers import this and onnxruntime only.

One session per model with one intra-op and one inter-op thread: the inference pool runs one process per
core, and several multi-threaded sessions in one process made p99 latency jump.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from models.architectures import INPUT_NAME, PreprocessingSpec


class Predictor:
    def __init__(self, model: bytes, *, intra_op_threads: int = 1):
        import onnxruntime as ort

        self.threads = intra_op_threads  # 1 in every pool; more only for comparisons (bench/detect_rate.py)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != [INPUT_NAME]:
            raise ValueError(f"the model's inputs are {inputs}, not [{INPUT_NAME!r}]")
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        return dict(zip(self.outputs, values, strict=True))


def to_input(image: Image.Image, spec: PreprocessingSpec) -> np.ndarray:
    """An RGB image (already cropped) as one input row: stretched to size x size, pixel * scale + offset."""
    if spec.channel_order != "RGB" or spec.layout != "NHWC" or spec.resize != "stretch":
        raise ValueError(f"unsupported preprocessing spec {spec}")
    if image.size != (spec.size, spec.size):
        image = image.resize((spec.size, spec.size), Image.Resampling.BILINEAR)
    row = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)  # a fresh copy
    row *= np.float32(spec.scale)  # in place: no temporaries (a third of this function's time at 128 px)
    row += np.float32(spec.offset)
    return row


def spec_from(data: dict) -> PreprocessingSpec:
    return PreprocessingSpec(**{k: v for k, v in data.items() if k != "input"})
