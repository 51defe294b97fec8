"""classification@1: one crop per box, for image classifiers.

Each box of an image gives one record "<image>:b<j>" (j: the box's index in the canonical order): the box
grown by `margin` times its width on the left and right and its height on the top and bottom, clipped to
the image, resized to `size` x `size` (the aspect ratio is NOT kept). The record has labels=(label,),
texts=(class name,) and one box, the whole crop (0, 0)-(1, 1): the TFRecord writer (handlers.tfrecord)
requires one box per label, and the whole crop is what the label describes. The class is also in the
extra features `image/class/label` and `image/class/text`, as TF classification pipelines read it, next to
`image/source_image_id` and `region/xmin|ymin|xmax|ymax` (the crop in pixels of the original image).
Nothing is random but the split. Boxes with no area inside the image are skipped; an image without boxes
gives nothing and is not decoded.
"""

from __future__ import annotations

from collections.abc import Iterator

from handlers import ops
from handlers.builtin import COMMON_OPTIONS, PerSampleHandler, boxes_in_view, encode_jpeg
from handlers.records import LabelMapSpec, Record, Sample
from handlers.registry import Option
from handlers.suggest import region_features


class ClassificationHandler(PerSampleHandler):
    name = "classification"
    version = 1
    task = "classification"
    description = ("One crop per box, grown by `margin`, resized to `size` x `size` and labelled with the box's "
                   "class. JPEG.")
    options = {
        "margin": Option("float", 0.1, "the crop is the box grown by this share of its size on each side", 0, 1),
        "size": Option("int", 224, "side of the square output in pixels", 32, 1024),
        **COMMON_OPTIONS,
    }

    def records(self, sample: Sample, config: dict, labels: LabelMapSpec) -> Iterator[Record]:
        view = boxes_in_view(sample, config, labels)
        if view is None:
            return
        image, boxes, clipped, usable, split = view
        size, margin = config["size"], config["margin"]
        for j in usable:
            x, y, w, h = (float(v) for v in clipped[j])
            region = (max(0.0, x - margin * w), max(0.0, y - margin * h),
                      min(float(image.width), x + w + margin * w), min(float(image.height), y + h + margin * h))
            crop, _ = ops.resized_crop(image, [], region, size, size)
            label, text = boxes[j].label, labels.name(boxes[j].label)
            yield Record(
                split=split, source_id=f"{sample.image_id}:b{j}",
                encoded=encode_jpeg(crop, config["jpeg_quality"]), format="jpeg", width=size, height=size,
                xmin=(0.0,), xmax=(1.0,), ymin=(0.0,), ymax=(1.0,), labels=(label,), texts=(text,),
                extra={"image/class/label": label, "image/class/text": text,
                       "image/source_image_id": sample.image_id, **region_features(region)},
            )
