"""The architecture registry: what each model takes, gives and is trained on, without TensorFlow.

An architecture is a Functional Keras model sized from a label map, with one named input `image`
(a batch of square RGB crops, preprocessed as its `PreprocessingSpec` says) and named outputs. The API
validates requests against this table; the training worker builds the models (`models.networks`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

INPUT_NAME = "image"


@dataclass(frozen=True)
class PreprocessingSpec:
    """How an image becomes the model's input: stretch-resize the crop to size x size (the dataset
    handlers crop and resize the same way), RGB channels, NHWC, float32 = pixel * scale + offset."""

    size: int
    channel_order: str = "RGB"
    layout: str = "NHWC"
    dtype: str = "float32"
    scale: float = 1 / 255
    offset: float = 0.0
    resize: str = "stretch"  # the aspect ratio is not kept

    def to_dict(self) -> dict:
        return {"input": INPUT_NAME, **asdict(self)}


@dataclass(frozen=True)
class Output:
    name: str
    units: str  # "4" or "classes"
    meaning: str


@dataclass(frozen=True)
class Architecture:
    name: str
    task: str  # the deployment task it serves: suggestion | classification | detection
    handlers: tuple[str, ...]  # dataset handlers whose records it trains on
    description: str
    outputs: tuple[Output, ...]
    default_size: int
    min_size: int = 32
    max_size: int = 512
    head: str = "class_scores"  # the output layer sized by the label map (replaced by `reinit_head`)

    def has_output(self, name: str) -> bool:
        return any(o.name == name for o in self.outputs)

    def output_units(self, classes: int) -> dict[str, int]:
        return {o.name: (classes if o.units == "classes" else int(o.units)) for o in self.outputs}

    def spec(self, size: int) -> PreprocessingSpec:
        return PreprocessingSpec(size=size)

    def check_size(self, size: int) -> str | None:
        if not self.min_size <= size <= self.max_size or size % 16:
            return f"must be a multiple of 16 in {self.min_size}..{self.max_size}"
        return None

    def describe(self) -> dict:
        return {
            "name": self.name, "task": self.task, "handlers": list(self.handlers), "description": self.description,
            "input": {"name": INPUT_NAME, "default_size": self.default_size, "min_size": self.min_size,
                      "max_size": self.max_size},
            "outputs": [{"name": o.name, "units": o.units, "meaning": o.meaning} for o in self.outputs],
            "preprocessing": self.spec(self.default_size).to_dict(),
        }


CLASS_SCORES = Output("class_scores", "classes", "softmax over the label map's classes, in label map order")

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture(
            "box_suggester", "suggestion", ("suggest",),
            "A rough region around one object in, the tight box in region coordinates and the class out: the "
            "model behind interactive box suggestions. Trained on suggest@ datasets.",
            (Output("box", "4", "ymin, xmin, ymax, xmax of the object, normalised to the input crop"), CLASS_SCORES),
            default_size=128,
        ),
        Architecture(
            "classifier", "classification", ("classification",),
            "A crop in, class scores out. Trained on classification@ datasets.",
            (CLASS_SCORES,),
            default_size=224,
        ),
        Architecture(
            "detector", "detection", ("detection",),
            "A whole image in, every object's box, class and score out (CenterNet-style: a per-class centre "
            "heatmap and a box per location at stride 4, decoded by models.detection). Trained on detection@ "
            "datasets.",
            (Output("scores", "classes", "per location (stride 4) and class: the probability that an object of "
                                         "the class is centred there"),
             Output("boxes", "4", "per location: ymin, xmin, ymax, xmax of the object centred there, normalised "
                                  "to the input")),
            default_size=128, min_size=64, head="scores",
        ),
    ]
}

DETECTOR_STRIDE = 4  # input pixels per location of the detector's output maps


class UnknownArchitecture(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name
        self.available = sorted(ARCHITECTURES)

    def __str__(self) -> str:
        return f"unknown architecture {self.name!r}; available: {', '.join(self.available)}"


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownArchitecture(name) from None
