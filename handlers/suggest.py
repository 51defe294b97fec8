"""suggest@1: training data for the box-suggestion model, which is shown a rough region around an object
and answers with the tight box.

For each box of an image, `regions` records "<image>:b<j>:r<r>" (j: the box's index in the canonical
order, r: the region). A region is the box grown on each side by its own margin, drawn from
[margin_min, margin_max] times the box's width (left, right) or height (top, bottom), then moved by up to
`shift` times the box size in x and y, then widened where needed so it still contains the whole box, then
clipped to the image. The region is cut out and resized to `size` x `size` (the aspect ratio is NOT kept:
inference must crop and resize the same way). The record holds exactly one object: the tight box in
region coordinates (normalised to the crop), with its label and class name; other boxes in the region are
ignored. Extra features: `region/xmin|ymin|xmax|ymax` (the region in pixels of the original image) and
`image/source_image_id`. Validation images get jittered regions too (that is the model's input). Boxes
with no area inside the image are skipped; an image without boxes gives nothing and is not decoded.
"""

from __future__ import annotations

from collections.abc import Iterator

from handlers import ops
from handlers.builtin import COMMON_OPTIONS, PerSampleHandler, boxes_in_view, encode_jpeg, normalised, rng_for
from handlers.records import LabelMapSpec, Record, Sample
from handlers.registry import Option


class SuggestHandler(PerSampleHandler):
    name = "suggest"
    version = 1
    task = "suggestion"
    description = ("For each box, jittered regions around it cropped and resized to `size` x `size`, with the "
                   "tight box as the one target in region coordinates. JPEG.")
    options = {
        "regions": Option("int", 8, "jittered regions (records) per box", 1, 32),
        "margin_min": Option("float", 0.1, "least growth of the region per side, as a share of the box size", 0, 2),
        "margin_max": Option("float", 0.6, "most growth of the region per side, as a share of the box size", 0, 2),
        "shift": Option("float", 0.1, "the region moves by up to this share of the box size in x and y; it "
                        "always still contains the whole box", 0, 0.5),
        "size": Option("int", 128, "side of the square output in pixels", 32, 512),
        **COMMON_OPTIONS,
    }

    def check(self, config: dict) -> dict[str, str]:
        if config["margin_min"] > config["margin_max"]:
            return {"margin_min": f"must be <= margin_max ({config['margin_max']:g})"}
        return {}

    def records(self, sample: Sample, config: dict, labels: LabelMapSpec) -> Iterator[Record]:
        view = boxes_in_view(sample, config, labels)
        if view is None:
            return
        image, boxes, clipped, usable, split = view
        size = config["size"]
        for j in usable:
            box = clipped[j]
            for r in range(config["regions"]):
                rng = rng_for(config["seed"], sample.image_id, j, r)
                region = self.region(box, image.width, image.height, config, rng)
                crop, target = ops.resized_crop(image, [box], region, size, size)
                yield Record(
                    split=split, source_id=f"{sample.image_id}:b{j}:r{r}",
                    encoded=encode_jpeg(crop, config["jpeg_quality"]), format="jpeg", width=size, height=size,
                    **normalised(target, size, size),
                    labels=(boxes[j].label,), texts=(labels.name(boxes[j].label),),
                    extra={"image/source_image_id": sample.image_id, **region_features(region)},
                )

    @staticmethod
    def region(box, width: int, height: int, config: dict, rng) -> ops.Rect:
        """The jittered region (left, top, right, bottom) around `box` (x, y, w, h) inside the image.
        Draws 6 numbers from `rng`: left, top, right, bottom margins, then the x and y shift."""
        x, y, w, h = (float(v) for v in box)
        lo, hi = config["margin_min"], config["margin_max"]
        ml, mt, mr, mb = (ops.uniform(rng, lo, hi) for _ in range(4))
        sx, sy = (ops.uniform(rng, -config["shift"], config["shift"]) for _ in range(2))
        left, right = x - ml * w + sx * w, x + w + mr * w + sx * w
        top, bottom = y - mt * h + sy * h, y + h + mb * h + sy * h
        left, top, right, bottom = min(left, x), min(top, y), max(right, x + w), max(bottom, y + h)
        return max(0.0, left), max(0.0, top), min(float(width), right), min(float(height), bottom)


def region_features(region: ops.Rect) -> dict[str, float]:
    return {f"region/{k}": float(v) for k, v in zip(("xmin", "ymin", "xmax", "ymax"), region, strict=True)}

