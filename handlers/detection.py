"""detection@1: whole images with their boxes, for object detection models (TF Object Detection API).

Each training image gives `variations` records "<image>:v<k>". With `original` (the default) the first,
v0, is the image only resized; the others (all of them without `original`) are augmented, in this order:
random crop (aspect ratio kept) and resize in one resampling, flip, rotation (image size kept), then
brightness and contrast. Each augmented variation draws its random numbers in that fixed order from
`default_rng([seed, image_id, k])` whether or not an op is enabled, so switching one op on or off does not
change what the others do. Validation images give exactly one record, v0, never augmented: the
validation set measures the model on real images. After the geometric steps each box is clipped to the
image and dropped when less than `min_visible` of its area is still visible (see handlers.ops). Images
without boxes (or whose boxes were all dropped) are kept as negatives. The output is JPEG with the
longest side `size`, aspect ratio kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from handlers import ops
from handlers.builtin import (
    COMMON_OPTIONS, PerSampleHandler, canonical_boxes, decode, encode_jpeg, normalised, rng_for, split_of,
)
from handlers.records import LabelMapSpec, Record, Sample
from handlers.registry import Option


class DetectionHandler(PerSampleHandler):
    name = "detection"
    version = 1
    task = "detection"
    description = ("Whole images with their boxes, resized so the longest side is `size`; each training image "
                   "in `variations` copies, augmented by crop, flip, rotation, brightness and contrast. JPEG.")
    options = {
        "variations": Option("int", 1, "records per training image; validation images always get one", 1, 20),
        "original": Option("bool", True, "the first variation of each training image is only resized, not augmented"),
        "crop": Option("float", 0.0, "random crop keeping the aspect ratio: at most this share of the width "
                       "and of the height is cut away", 0, 0.5),
        "flip": Option("bool", True, "mirror left to right, each augmented variation with probability 0.5"),
        "rotation": Option("float", 0.0, "rotate by an angle drawn from [-rotation, rotation] degrees; the image "
                           "keeps its size, uncovered corners are grey, a box becomes the bounding box of its "
                           "rotated corners", 0, 45),
        "brightness": Option("float", 0.0, "brightness factor drawn from [1 - brightness, 1 + brightness]", 0, 1),
        "contrast": Option("float", 0.0, "contrast factor drawn from [1 - contrast, 1 + contrast]", 0, 1),
        "size": Option("int", 512, "longest side of the output in pixels, aspect ratio kept (small images grow)",
                       32, 2048),
        "min_visible": Option("float", 0.3, "after crop and rotation a box is clipped to the image and dropped "
                              "when less than this share of its area is still inside", 0, 1),
        **COMMON_OPTIONS,
    }

    def records(self, sample: Sample, config: dict, labels: LabelMapSpec) -> Iterator[Record]:
        boxes = canonical_boxes(sample, labels)
        image = decode(sample)
        start = ops.Scene.of(image, [(b.x, b.y, b.w, b.h) for b in boxes])
        split = split_of(config["seed"], sample.image_id, config["validation_fraction"])
        count = config["variations"] if split == "train" else 1
        for k in range(count):
            plain = split == "validation" or (k == 0 and config["original"])
            scene = self._plain(start, config) if plain else self._augmented(start, config, sample.image_id, k)
            keep = scene.kept(config["min_visible"])
            width, height = scene.image.size
            yield Record(
                split=split, source_id=f"{sample.image_id}:v{k}",
                encoded=encode_jpeg(scene.image, config["jpeg_quality"]), format="jpeg", width=width, height=height,
                **normalised(scene.boxes[keep], width, height),
                labels=tuple(boxes[i].label for i in keep), texts=tuple(labels.name(boxes[i].label) for i in keep),
                extra={"image/source_image_id": sample.image_id},
            )

    @staticmethod
    def _plain(scene: ops.Scene, config: dict) -> ops.Scene:
        return scene.apply(ops.resize, *ops.fit_longest(*scene.image.size, config["size"]))

    @staticmethod
    def _augmented(scene: ops.Scene, config: dict, image_id: int, k: int) -> ops.Scene:
        rng = rng_for(config["seed"], image_id, k)
        rect = ops.random_crop_rect(*scene.image.size, config["crop"], rng)
        flip = rng.random() < 0.5
        angle = ops.uniform(rng, -config["rotation"], config["rotation"])
        bright, contrast = ops.jitter(rng, config["brightness"]), ops.jitter(rng, config["contrast"])
        size = ops.fit_longest(rect[2] - rect[0], rect[3] - rect[1], config["size"])
        scene = scene.apply(ops.resized_crop, rect, *size)
        if flip and config["flip"]:
            scene = scene.apply(ops.hflip)
        if angle:
            scene = scene.apply(ops.rotate, angle)
        return scene.with_image(ops.contrast(ops.brightness(scene.image, bright), contrast))
