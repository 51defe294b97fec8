"""Checks an uploaded `.keras` file without TensorFlow, so the API can refuse a bad one at once.

A Keras 3 `.keras` file is a zip of `config.json` (the model graph), `metadata.json` and
`model.weights.h5`. The check reads every member against its CRC (a truncated or flipped file fails),
parses the graph, and compares it with the architecture: a Functional model with one input `image` of
shape (None, S, S, 3) and exactly the architecture's named outputs, each a layer with the right number
of units. Loading the weights for real happens in the worker that trains the checkpoint.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from models.architectures import INPUT_NAME, Architecture

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
REQUIRED = ("config.json", "metadata.json", "model.weights.h5")


class InvalidModelFile(ValueError):
    """The file is not a usable model for the architecture; the message says why."""


@dataclass(frozen=True)
class ModelFileInfo:
    size: int  # the input side S
    keras_version: str


def check_keras_file(fh: BinaryIO, architecture: Architecture, classes: int) -> ModelFileInfo:
    try:
        archive = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidModelFile(f"not a readable .keras file (the zip keras Model.save writes); it may be truncated: "
                               f"{exc}") from None
    with archive:
        names = set(archive.namelist())
        missing = [n for n in REQUIRED if n not in names]
        if missing:
            raise InvalidModelFile(f"not a Keras 3 .keras file: missing {', '.join(missing)}")
        try:
            broken = archive.testzip()
            config = json.loads(archive.read("config.json"))
            metadata = json.loads(archive.read("metadata.json"))
            with archive.open("model.weights.h5") as weights:
                signature = weights.read(len(HDF5_SIGNATURE))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
            raise InvalidModelFile(f"the file is corrupt: {exc}") from None
        if broken:
            raise InvalidModelFile(f"the file is corrupt: {broken} fails its checksum")
        if signature != HDF5_SIGNATURE:
            raise InvalidModelFile("the file is corrupt: model.weights.h5 is not an HDF5 file")
    size = _check_graph(config, architecture, classes)
    return ModelFileInfo(size=size, keras_version=str(metadata.get("keras_version", "")))


def _check_graph(config: dict, architecture: Architecture, classes: int) -> int:
    if not isinstance(config, dict) or config.get("class_name") != "Functional":
        got = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise InvalidModelFile(f"the model must be a Functional Keras model, not {got}")
    graph = config.get("config") or {}
    layers = {layer.get("config", {}).get("name"): layer for layer in graph.get("layers", [])}
    inputs = graph.get("input_layers")
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], str):
        inputs = [inputs]  # one input is saved as [name, node, tensor]
    input_names = [i[0] for i in inputs or []]
    if input_names != [INPUT_NAME]:
        raise InvalidModelFile(f"{architecture.name} takes one input named {INPUT_NAME!r}; the file's inputs are "
                               f"{input_names}")
    shape = layers[INPUT_NAME].get("config", {}).get("batch_shape")
    if not (isinstance(shape, list) and len(shape) == 4 and shape[1] == shape[2] and shape[3] == 3
            and isinstance(shape[1], int)):
        raise InvalidModelFile(f"input {INPUT_NAME!r} must have shape (None, S, S, 3); the file's is {shape}")
    if (why := architecture.check_size(shape[1])) is not None:
        raise InvalidModelFile(f"input size {shape[1]} {why}")
    outputs = graph.get("output_layers")
    if not isinstance(outputs, dict):
        raise InvalidModelFile(f"{architecture.name} has named outputs {sorted(o.name for o in architecture.outputs)}; "
                               "the file's outputs are not named (save a model built with a dict of outputs)")
    want = architecture.output_units(classes)
    if sorted(outputs) != sorted(want):
        raise InvalidModelFile(f"{architecture.name} has outputs {sorted(want)}; the file's are {sorted(outputs)}")
    for name, units in want.items():
        layer = layers.get(outputs[name][0], {})
        config = layer.get("config", {})
        got = config.get("units", config.get("filters"))  # Dense units, Conv2D filters (per location)
        if got != units:
            what = f"{classes} classes of the label map" if name == architecture.head else f"{units} values"
            raise InvalidModelFile(f"output {name!r} must have {units} units ({what}); the file's has {got}")
    return shape[1]
