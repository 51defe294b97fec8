"""Augmentation ops on a PIL RGB image and its boxes.

Boxes are a float64 numpy array of N x 4 rows `x, y, w, h` in pixels of the image they belong to, with
pixel edges on integers: (0, 0, W, H) is the whole image. Every geometric op returns the image and the
boxes moved with it, NOT clipped: a box may now reach past the image. `Scene.apply` runs a geometric op
and then clips, and keeps for each box the fraction of its original area that is still visible, as a
product over the steps (a box cut in half by a crop and then half of the rest by a rotation keeps 0.25).
`Scene.kept(min_visible)` is the rule the handlers apply after their geometric steps: a box is dropped
when less than `min_visible` of its original area remains in the image (or none at all).

Photometric ops (brightness, contrast) take and return an image only: boxes do not change. All
randomness comes from a `numpy.random.Generator` the caller passes in; nothing here uses global random
state, so the same generator state gives the same result in any process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageEnhance

FILL = (128, 128, 128)  # what a rotation uncovers: mid grey, the least conspicuous colour
RESAMPLE = Image.Resampling.BILINEAR  # Pillow's bilinear filter is antialiased when it shrinks

Rect = tuple[float, float, float, float]  # left, top, right, bottom in pixels


def as_boxes(boxes) -> np.ndarray:
    """A float64 N x 4 copy of `boxes` (any sequence of x, y, w, h rows; empty gives 0 x 4)."""
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def clip_boxes(boxes, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to the image (0, 0, width, height) and, per box, the fraction of its area that is
    left (0 for a box with no area, or none inside the image)."""
    b = as_boxes(boxes)
    x0, x1 = np.clip(b[:, 0], 0, width), np.clip(b[:, 0] + b[:, 2], 0, width)
    y0, y1 = np.clip(b[:, 1], 0, height), np.clip(b[:, 1] + b[:, 3], 0, height)
    area = b[:, 2] * b[:, 3]
    left = (x1 - x0) * (y1 - y0)
    fraction = np.divide(left, area, out=np.zeros_like(area), where=area > 0)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1), np.minimum(fraction, 1.0)


def hflip(image: Image.Image, boxes) -> tuple[Image.Image, np.ndarray]:
    """Mirror left to right."""
    b = as_boxes(boxes)
    b[:, 0] = image.width - b[:, 0] - b[:, 2]
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), b


def crop(image: Image.Image, boxes, rect: Rect) -> tuple[Image.Image, np.ndarray]:
    """Cut out `rect` (left, top, right, bottom; rounded to whole pixels, so no resampling)."""
    left, top, right, bottom = (int(round(v)) for v in rect)
    b = as_boxes(boxes)
    b[:, :2] -= (left, top)
    return image.crop((left, top, right, bottom)), b


EDGE = 0.5  # px a region or box may overhang its image (rounding in clients); it is clipped to the image


def region_in_image(x: float, y: float, w: float, h: float, width: int, height: int) -> Rect | None:
    """The region x, y, w, h as (left, top, right, bottom) clipped to a width x height image, or None when it
    starts outside the image or overhangs it by more than EDGE px. The one region check of the box
    suggestions and the pipelines' `preprocess`."""
    if x < 0 or y < 0 or x + w > width + EDGE or y + h > height + EDGE:
        return None
    return x, y, min(float(width), x + w), min(float(height), y + h)


def resize(image: Image.Image, boxes, width: int, height: int) -> tuple[Image.Image, np.ndarray]:
    """Scale to width x height (the aspect ratio changes if they say so)."""
    return resized_crop(image, boxes, (0, 0, image.width, image.height), width, height)


def resized_crop(image: Image.Image, boxes, rect: Rect, width: int, height: int) -> tuple[Image.Image, np.ndarray]:
    """Cut out `rect` (fractional pixels allowed) and scale it to width x height in one resampling."""
    left, top, right, bottom = (float(v) for v in rect)
    sx, sy = width / (right - left), height / (bottom - top)
    b = as_boxes(boxes)
    b[:, 0], b[:, 1] = (b[:, 0] - left) * sx, (b[:, 1] - top) * sy
    b[:, 2] *= sx
    b[:, 3] *= sy
    if (left, top, right, bottom) == (0, 0, image.width, image.height) and (width, height) == image.size:
        return image, b
    return image.resize((width, height), RESAMPLE, box=(left, top, right, bottom)), b


def rotate(image: Image.Image, boxes, degrees: float, fill=FILL) -> tuple[Image.Image, np.ndarray]:
    """Rotate counter-clockwise by `degrees` about the image centre, keeping the image size (Pillow's
    expand=False: the corners are cut off and the uncovered corners filled with `fill`). Each box becomes
    the axis-aligned bounding box of its four rotated corners, which contains the rotated object but is
    looser than a tight box (a square at 45 degrees: twice the area; elongated boxes: more)."""
    b = as_boxes(boxes)
    if degrees % 360 == 0:
        return image, b
    cx, cy = image.width / 2, image.height / 2
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    xs = b[:, [0, 0, 0, 0]] + b[:, [2]] * (0, 1, 0, 1) - cx  # corners relative to the centre
    ys = b[:, [1, 1, 1, 1]] + b[:, [3]] * (0, 0, 1, 1) - cy
    nx, ny = cx + xs * c + ys * s, cy - xs * s + ys * c  # y points down, so this is counter-clockwise on screen
    out = np.stack([nx.min(1), ny.min(1), nx.max(1) - nx.min(1), ny.max(1) - ny.min(1)], axis=1)
    return image.rotate(degrees, RESAMPLE, expand=False, fillcolor=fill), out.reshape(-1, 4)


def brightness(image: Image.Image, factor: float) -> Image.Image:
    """Scale brightness: 1 keeps the image, 0 is black, 2 twice as bright (clipped)."""
    return image if factor == 1 else ImageEnhance.Brightness(image).enhance(factor)


def contrast(image: Image.Image, factor: float) -> Image.Image:
    """Scale contrast about the mean grey: 1 keeps the image, 0 is flat grey."""
    return image if factor == 1 else ImageEnhance.Contrast(image).enhance(factor)


def fit_longest(width: int, height: int, size: int) -> tuple[int, int]:
    """The size with the longest side exactly `size` and the same aspect ratio (smaller images grow)."""
    longest = max(width, height)
    return max(1, round(width * size / longest)), max(1, round(height * size / longest))


def random_crop_rect(width: int, height: int, max_cut: float, rng: np.random.Generator) -> Rect:
    """A whole-pixel crop with the image's aspect ratio: each side is scaled by the same factor drawn
    uniformly from [1 - max_cut, 1] (so `max_cut` is the most cut away from the width and from the
    height, not from the area), at a uniformly drawn position. Always draws 3 numbers from `rng`."""
    scale, fx, fy = rng.random(3)
    scale = 1 - max_cut * scale
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    left, top = min(int(fx * (width - cw + 1)), width - cw), min(int(fy * (height - ch + 1)), height - ch)
    return left, top, left + cw, top + ch


def jitter(rng: np.random.Generator, amount: float) -> float:
    """A factor drawn uniformly from [1 - amount, 1 + amount]. Always draws 1 number."""
    return 1 + amount * (2 * rng.random() - 1)


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A number drawn uniformly from [low, high]. Always draws 1 number."""
    return low + (high - low) * rng.random()


@dataclass(frozen=True)
class Scene:
    """An image, its boxes (N x 4, clipped to the image) and per box the fraction of its original area
    still visible. Geometric steps go through `apply`, photometric ones through `with_image`."""

    image: Image.Image
    boxes: np.ndarray
    visible: np.ndarray

    @classmethod
    def of(cls, image: Image.Image, boxes) -> Scene:
        """The starting scene: boxes clipped to the image; what is inside counts as the whole object."""
        clipped, fraction = clip_boxes(boxes, image.width, image.height)
        return cls(image, clipped, (fraction > 0).astype(np.float64))

    def apply(self, op, *args, **kwargs) -> Scene:
        """Run a geometric op `op(image, boxes, ...) -> (image, boxes)`, then clip the boxes to the new
        image and multiply each box's visible fraction by the share of its moved area still inside."""
        image, boxes = op(self.image, self.boxes, *args, **kwargs)
        clipped, fraction = clip_boxes(boxes, image.width, image.height)
        return Scene(image, clipped, self.visible * fraction)

    def with_image(self, image: Image.Image) -> Scene:
        return replace(self, image=image)

    def kept(self, min_visible: float) -> np.ndarray:
        """Indices of the boxes to keep: at least `min_visible` of the original area visible, and some."""
        return np.flatnonzero((self.visible >= min_visible) & (self.visible > 0))
