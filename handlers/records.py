"""What dataset handlers take and give: samples from the catalog in, records for TFRecord shards out.

A `Sample` is one stored image with its accepted boxes in pixels and label ids of the dataset's label map.
A `Record` is one training example as the TF Object Detection API lays it out: an encoded image and its
boxes normalised to [0, 1] as (ymin, xmin, ymax, xmax) corners, with label ids and class names.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Box:
    """A box in pixels of its image, `label` is the class id in the label map (1..n; 0 is background)."""

    label: int
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Sample:
    image_id: int
    data: bytes  # the stored RGB image: JPEG or PNG bytes
    width: int
    height: int
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class LabelMapSpec:
    """The label map as handlers see it: `names[i]` is the class name of label id i + 1."""

    names: tuple[str, ...]

    def name(self, label: int) -> str:
        if not 1 <= label <= len(self.names):
            raise ValueError(f"label {label} is not in this label map (1..{len(self.names)})")
        return self.names[label - 1]


@dataclass(frozen=True)
class Record:
    split: str  # "train" or "validation"
    source_id: str  # where it came from, e.g. "17:v2" (image 17, third variation): unique in a dataset
    encoded: bytes
    format: str  # "jpeg" or "png", as the TF OD API spells image/format
    width: int
    height: int
    # normalised corners, one entry per object
    xmin: tuple[float, ...] = ()
    xmax: tuple[float, ...] = ()
    ymin: tuple[float, ...] = ()
    ymax: tuple[float, ...] = ()
    labels: tuple[int, ...] = ()
    texts: tuple[str, ...] = ()
    # handler-specific features, name -> list of ints / floats / bytes|str, or (type, list) to type an
    # empty list; e.g. the region a crop came from. Classification records carry one whole-crop box.
    extra: dict = field(default_factory=dict, hash=False)
