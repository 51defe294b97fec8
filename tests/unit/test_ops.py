"""handlers.ops: each geometric op must move the boxes with the pixels. An object is a rectangle of a
distinct colour drawn exactly at its box; after the op the transformed box must be where that colour is."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handlers import ops

RED, GREEN, BG = (230, 20, 20), (20, 200, 40), (40, 40, 40)


def scene_image(width: int, height: int, *objects: tuple[tuple[float, float, float, float], tuple]) -> Image.Image:
    img = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(img)
    for (x, y, w, h), colour in objects:
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=colour)  # covers pixels [x, x+w) x [y, y+h)
    return img


def colour_bbox(img: Image.Image, colour, tol: int = 60) -> tuple[float, float, float, float]:
    """x, y, w, h of the pixels within `tol` of `colour` (per channel)."""
    mask = (np.abs(np.asarray(img, dtype=np.int16) - colour) <= tol).all(axis=2)
    ys, xs = np.nonzero(mask)
    assert len(xs), "the colour is gone"
    return xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()


def share_of_colour(img: Image.Image, box, colour, inset: float = 1, tol: int = 60) -> float:
    """The share of the pixels inside `box` (shrunk by `inset` px per side) that are `colour`."""
    x, y, w, h = box
    region = np.asarray(img, dtype=np.int16)[int(np.ceil(y + inset)):int(y + h - inset),
                                             int(np.ceil(x + inset)):int(x + w - inset)]
    assert region.size
    return float((np.abs(region - colour) <= tol).all(axis=2).mean())


def assert_box_on_object(img, box, colour, slack: float = 1.0):
    """The box and the object's pixels agree to within `slack` pixels on every side."""
    np.testing.assert_allclose(box, colour_bbox(img, colour), atol=slack)
    assert share_of_colour(img, box, colour) > 0.95


def test_hflip_moves_box_with_object():
    box = (20, 30, 40, 20)
    img, boxes = ops.hflip(scene_image(200, 100, (box, RED)), [box])
    np.testing.assert_allclose(boxes, [[140, 30, 40, 20]])
    assert_box_on_object(img, boxes[0], RED, slack=0)


def test_crop_moves_box_with_object():
    box = (60, 40, 30, 25)
    img, boxes = ops.crop(scene_image(200, 100, (box, RED)), [box], (50, 20, 150, 90))
    assert img.size == (100, 70)
    np.testing.assert_allclose(boxes, [[10, 20, 30, 25]])
    assert_box_on_object(img, boxes[0], RED, slack=0)


def test_resize_scales_box_with_object():
    box = (40, 20, 60, 30)
    img, boxes = ops.resize(scene_image(200, 100, (box, RED)), [box], 100, 80)
    np.testing.assert_allclose(boxes, [[20, 16, 30, 24]])
    assert_box_on_object(img, boxes[0], RED)


def test_resized_crop_with_fractional_rect():
    box = (60, 40, 30, 20)
    rect = (40.5, 30.25, 120.5, 70.25)  # 80 x 40, scaled by 2
    img, boxes = ops.resized_crop(scene_image(200, 100, (box, RED)), [box], rect, 160, 80)
    np.testing.assert_allclose(boxes, [[39, 19.5, 60, 40]])
    assert_box_on_object(img, boxes[0], RED, slack=1.5)


@pytest.mark.parametrize("size", [(120, 120), (160, 120)])
def test_rotate_90_moves_box_with_object(size):
    box = (50, 45, 30, 15)
    img, boxes = ops.rotate(scene_image(*size, (box, RED)), [box], 90)
    assert img.size == size  # expand=False
    w, h = size
    # counter-clockwise about the centre: (x, y) -> (cx + (y - cy), cy - (x - cx))
    expected = [w / 2 + (45 - h / 2), h / 2 - (80 - w / 2), 15, 30]
    np.testing.assert_allclose(boxes[0], expected, atol=1e-9)
    assert_box_on_object(img, boxes[0], RED, slack=1.0)


@pytest.mark.parametrize("angle", [7.5, -20.0, 45.0])
def test_rotate_small_angle_box_contains_object(angle):
    box = (70, 50, 40, 24)
    img, boxes = ops.rotate(scene_image(200, 150, (box, RED)), [box], angle)
    x, y, w, h = boxes[0]
    ox, oy, ow, oh = colour_bbox(img, RED, tol=100)
    assert x <= ox + 0.5 and y <= oy + 0.5 and ox + ow <= x + w + 0.5 and oy + oh <= y + h + 0.5
    # and it is the bounding box of the rotated rectangle, not something larger
    np.testing.assert_allclose(boxes[0], (ox, oy, ow, oh), atol=1.5)
    c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    np.testing.assert_allclose((w, h), (40 * c + 24 * s, 40 * s + 24 * c))


def test_rotate_zero_is_identity():
    img = scene_image(50, 40)
    out, boxes = ops.rotate(img, [(1, 2, 3, 4)], 0)
    assert out is img and boxes.tolist() == [[1, 2, 3, 4]]


def test_clip_boxes_and_fractions():
    boxes = [(-10, 0, 20, 10),   # half outside on the left
             (90, 90, 20, 20),   # a quarter inside
             (200, 0, 5, 5),     # all outside
             (10, 10, 0, 5),     # no area
             (10, 10, 20, 20)]   # inside
    clipped, fraction = ops.clip_boxes(boxes, 100, 100)
    np.testing.assert_allclose(clipped[[0, 1, 4]], [[0, 0, 10, 10], [90, 90, 10, 10], [10, 10, 20, 20]])
    np.testing.assert_allclose(fraction, [0.5, 0.25, 0, 0, 1])
    assert ops.clip_boxes([], 10, 10)[0].shape == (0, 4)


def test_scene_drops_boxes_below_min_visible_over_steps():
    img = scene_image(100, 100)
    scene = ops.Scene.of(img, [(0, 0, 40, 40), (60, 60, 20, 20), (30, 30, 40, 40)])
    scene = scene.apply(ops.crop, (20, 20, 100, 100))  # box 0: 1/4 left; box 1 whole; box 2 whole
    np.testing.assert_allclose(scene.visible, [0.25, 1, 1])
    assert scene.kept(0.3).tolist() == [1, 2]
    scene = scene.apply(ops.crop, (0, 0, 60, 60))  # box 1 now at (40, 40, 20, 20): whole; box 2 at (10..50): whole
    scene = scene.apply(ops.crop, (0, 0, 50, 50))  # box 1: 1/4 left; box 2 whole
    np.testing.assert_allclose(scene.visible, [0.25, 0.25, 1])
    np.testing.assert_allclose(scene.boxes[1], [40, 40, 10, 10])
    assert scene.kept(0.3).tolist() == [2]
    assert scene.kept(0.25).tolist() == [0, 1, 2]
    assert scene.kept(0).tolist() == [0, 1, 2]
    gone = scene.apply(ops.crop, (0, 0, 5, 5))  # box 0 survives only as a sliver, others vanish
    assert gone.kept(0).tolist() == [0]


def test_scene_of_counts_overhanging_annotation_as_whole():
    scene = ops.Scene.of(scene_image(50, 50), [(-5, 0, 10, 10), (60, 60, 5, 5)])
    np.testing.assert_allclose(scene.boxes[0], [0, 0, 5, 10])
    assert scene.visible.tolist() == [1.0, 0.0] and scene.kept(1.0).tolist() == [0]


def test_photometric_ops_leave_boxes_and_keep_size():
    box = (10, 10, 20, 20)
    img = scene_image(60, 40, (box, RED))
    scene = ops.Scene.of(img, [box])
    darker = scene.with_image(ops.brightness(scene.image, 0.5))
    assert darker.boxes.tolist() == scene.boxes.tolist() and darker.image.size == img.size
    assert np.asarray(darker.image).mean() < np.asarray(img).mean()
    flat = ops.contrast(img, 0.0)
    assert np.ptp(np.asarray(flat)) <= 1
    assert ops.brightness(img, 1) is img and ops.contrast(img, 1) is img


def test_random_crop_rect_bounds_aspect_and_determinism():
    rng = np.random.default_rng(3)
    for _ in range(200):
        left, top, right, bottom = ops.random_crop_rect(640, 480, 0.5, rng)
        assert 0 <= left < right <= 640 and 0 <= top < bottom <= 480
        assert right - left >= 320 and bottom - top >= 240
        assert abs((right - left) / (bottom - top) - 640 / 480) < 0.01
    assert ops.random_crop_rect(640, 480, 0.0, np.random.default_rng(1)) == (0, 0, 640, 480)
    a = ops.random_crop_rect(640, 480, 0.3, np.random.default_rng([1, 2, 3]))
    assert a == ops.random_crop_rect(640, 480, 0.3, np.random.default_rng([1, 2, 3]))
    # always three draws, whatever max_cut is, so later draws do not depend on the crop setting
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    ops.random_crop_rect(640, 480, 0.0, r1)
    ops.random_crop_rect(640, 480, 0.4, r2)
    assert r1.random() == r2.random()


def test_jitter_and_fit_longest():
    rng = np.random.default_rng(0)
    factors = [ops.jitter(rng, 0.25) for _ in range(500)]
    assert 0.75 <= min(factors) < 0.8 and 1.2 < max(factors) <= 1.25
    assert ops.jitter(rng, 0) == 1
    assert ops.fit_longest(640, 480, 320) == (320, 240)
    assert ops.fit_longest(100, 300, 600) == (200, 600)


def test_random_pipeline_keeps_boxes_on_objects():
    """Crop, flip and resize chained with random parameters: every kept box still covers its object."""
    objects = [((100, 80, 60, 50), RED), ((300, 200, 80, 60), GREEN)]
    img = scene_image(480, 360, *objects)
    for seed in range(10):
        rng = np.random.default_rng(seed)
        scene = ops.Scene.of(img, [o[0] for o in objects])
        rect = ops.random_crop_rect(480, 360, 0.4, rng)
        scene = scene.apply(ops.resized_crop, rect, *ops.fit_longest(rect[2] - rect[0], rect[3] - rect[1], 240))
        if rng.random() < 0.5:
            scene = scene.apply(ops.hflip)
        for i in scene.kept(0.5):
            assert share_of_colour(scene.image, scene.boxes[i], objects[i][1], inset=1.5) > 0.95
