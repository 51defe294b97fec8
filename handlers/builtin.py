"""What the built-in handlers share: decoding a sample, the split, seeded randomness, encoding.

Reproducibility rules every built-in handler follows:

- The split is decided per SOURCE IMAGE by a hash of (seed, image id) against `validation_fraction`,
  so all records made from one image land in the same split, and the same seed gives the same split in
  every handler (a classification dataset and a detection dataset built with one seed agree on it).
- All randomness for one output comes from `numpy.random.default_rng([seed, image_id, k, ...])`, never
  from shared state, so a record does not depend on the order of the samples or on the process.
- Boxes are taken in a canonical order (`canonical_boxes`), not in the order the catalog returned them.
- Pillow's JPEG encoder at a fixed quality is deterministic: the same samples and config give
  byte-identical records (on the same Pillow/libjpeg build).
"""

from __future__ import annotations

import hashlib
from io import BytesIO

import numpy as np
from PIL import Image

from handlers import ops
from handlers.records import Box, LabelMapSpec, Sample
from handlers.registry import Handler, Option

SEED_MAX = 2**31 - 1

COMMON_OPTIONS = {
    "validation_fraction": Option(
        "float", 0.2, "share of source images in the validation split (decided per image by a seeded hash)", 0, 0.9),
    "seed": Option("int", 0, "seed of the split and of every random choice", 0, SEED_MAX),
    "jpeg_quality": Option("int", 90, "JPEG quality of the output images", 50, 100),
}


class BadSample(ValueError):
    """A sample the build cannot use: its image does not decode, is not the size the catalog says, or a
    box has a label outside the label map. The build job treats it as an error."""


def builtin_handlers() -> list[type]:
    from handlers.classification import ClassificationHandler
    from handlers.detection import DetectionHandler
    from handlers.suggest import SuggestHandler

    return [ClassificationHandler, DetectionHandler, SuggestHandler]


def decode(sample: Sample) -> Image.Image:
    """The sample's pixels as an RGB image; BadSample when they cannot be decoded or the size is wrong."""
    try:
        image = Image.open(BytesIO(sample.data))
        image.load()
    except Exception as exc:
        raise BadSample(f"image {sample.image_id} cannot be decoded: {exc}") from exc
    if image.size != (sample.width, sample.height):
        raise BadSample(f"image {sample.image_id} is {image.width}x{image.height} pixels, "
                        f"the catalog says {sample.width}x{sample.height}")
    return image if image.mode == "RGB" else image.convert("RGB")


def split_of(seed: int, image_id: int, validation_fraction: float) -> str:
    digest = hashlib.blake2b(f"{seed}:{image_id}".encode(), digest_size=8, person=b"loopline-split").digest()
    return "validation" if int.from_bytes(digest, "big") / 2**64 < validation_fraction else "train"


def rng_for(seed: int, image_id: int, *k: int) -> np.random.Generator:
    return np.random.default_rng([seed, image_id, *k])


def canonical_boxes(sample: Sample, labels: LabelMapSpec) -> list[Box]:
    """The sample's boxes sorted by position, size and label; BadSample for a label not in the map."""
    for box in sample.boxes:
        if not (isinstance(box.label, int) and 1 <= box.label <= len(labels.names)):
            raise BadSample(f"image {sample.image_id}: label {box.label!r} is not in the label map "
                            f"(1..{len(labels.names)})")
    return sorted(sample.boxes, key=lambda b: (b.y, b.x, b.h, b.w, b.label))


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    out = BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def normalised(boxes: np.ndarray, width: int, height: int) -> dict[str, tuple[float, ...]]:
    """Record fields xmin, xmax, ymin, ymax: pixel boxes (N x 4, x y w h) as corners in [0, 1]."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, x1 = np.clip(b[:, 0] / width, 0, 1), np.clip((b[:, 0] + b[:, 2]) / width, 0, 1)
    y0, y1 = np.clip(b[:, 1] / height, 0, 1), np.clip((b[:, 1] + b[:, 3]) / height, 0, 1)
    return {"xmin": tuple(x0.tolist()), "xmax": tuple(x1.tolist()),
            "ymin": tuple(y0.tolist()), "ymax": tuple(y1.tolist())}


def boxes_in_view(sample: Sample, config: dict, labels: LabelMapSpec):
    """For handlers that crop around boxes: (image, boxes, clipped boxes, indices of boxes with some area
    inside the image, split), or None for a sample without boxes (its image is then not decoded)."""
    boxes = canonical_boxes(sample, labels)
    if not boxes:
        return None
    image = decode(sample)
    clipped, visible = ops.clip_boxes([(b.x, b.y, b.w, b.h) for b in boxes], image.width, image.height)
    usable = [j for j in range(len(boxes)) if visible[j] > 0]
    return image, boxes, clipped, usable, split_of(config["seed"], sample.image_id, config["validation_fraction"])


class PerSampleHandler(Handler):
    """A handler that turns each sample into records on its own (all the built-ins)."""

    def build(self, samples, config: dict, labels: LabelMapSpec):
        for sample in samples:
            yield from self.records(sample, config, labels)

    def records(self, sample: Sample, config: dict, labels: LabelMapSpec):
        raise NotImplementedError
