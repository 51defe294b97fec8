"""Keras → ONNX, and the check that both give the same answers. Imports TensorFlow/Keras.

Functional models with a dict of outputs export with their names kept (`image` in; `box`,
`class_scores` out) and a dynamic batch dimension. Opset 17, not Keras's default 15.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

OPSET = 17


def export_onnx(model, path: str | Path) -> None:
    size = int(model.inputs[0].shape[1])
    model(np.zeros((1, size, size, 3), np.float32))  # Keras exports only a model that has been called
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx on NumPy 2
        model.export(str(path), format="onnx", opset_version=OPSET, verbose=False)


def max_difference(model, onnx_path: str | Path, samples: np.ndarray) -> float:
    """Largest |ONNX − Keras| over every output and element, for `samples` (N x S x S x 3 float32)."""
    from models.predictor import Predictor

    predictor = Predictor(Path(onnx_path).read_bytes())
    onnx_out = predictor.run(samples)
    keras_out = model.predict(samples, verbose=0)
    missing = set(keras_out) ^ set(onnx_out)
    if missing:
        raise ValueError(f"the ONNX model's outputs differ from the Keras model's: {sorted(missing)}")
    return max(float(np.max(np.abs(onnx_out[k] - np.asarray(keras_out[k])))) for k in keras_out)


def sample_inputs(size: int, n: int = 8, seed: int = 0) -> np.ndarray:
    """Inputs to compare on: uniform noise, a black and a white image, in the [0, 1] range of the spec."""
    rng = np.random.default_rng(seed)
    batch = rng.random((n, size, size, 3), dtype=np.float32)
    batch[0], batch[1] = 0.0, 1.0
    return batch
