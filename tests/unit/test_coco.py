"""COCO import validation and export, checked against pycocotools as the reference reader."""

from __future__ import annotations

import copy
import json

import pytest
from pycocotools.coco import COCO

from handlers.coco import CocoBox, CocoCategory, CocoError, CocoImage, build_coco, parse_coco

CATEGORIES = [
    {"id": 1, "name": "cat", "group": "animal"},
    {"id": 2, "name": "dog", "group": "animal"},
    {"id": 7, "name": "acme logo", "group": None},
]
IMAGES = [
    {"id": 10, "file_name": "a.jpg", "width": 640, "height": 480},
    {"id": 11, "file_name": "b.png", "width": 100, "height": 50},
    {"id": 12, "file_name": "empty.jpg", "width": 32, "height": 32},
]
BOXES = [
    {"id": 100, "image_id": 10, "category_id": 1, "x": 10.0, "y": 20.0, "w": 30.5, "h": 40.0, "score": None},
    {"id": 101, "image_id": 10, "category_id": 2, "x": 0.0, "y": 0.0, "w": 640.0, "h": 480.0},
    {"id": 102, "image_id": 11, "category_id": 7, "x": 1.25, "y": 2.5, "w": 3.0, "h": 4.0, "score": 0.875},
]


def valid_doc() -> dict:
    return build_coco(CATEGORIES, IMAGES, BOXES)


def problems_of(doc, **kwargs) -> list[str]:
    with pytest.raises(CocoError) as caught:
        parse_coco(doc, **kwargs)
    assert isinstance(caught.value, ValueError)
    return caught.value.problems


def assert_problem(doc, location: str, words: str = "") -> None:
    found = problems_of(doc)
    assert any(p.startswith(location + ":") and words in p for p in found), found


def test_round_trip_through_pycocotools(tmp_path):
    doc = build_coco(CATEGORIES, IMAGES, BOXES, info={"description": "test"})
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    coco = COCO(str(path))

    assert sorted(coco.getCatIds()) == [1, 2, 7]
    assert {c["id"]: (c["name"], c["supercategory"]) for c in coco.loadCats(coco.getCatIds())} == {
        1: ("cat", "animal"), 2: ("dog", "animal"), 7: ("acme logo", ""),
    }
    assert sorted(coco.getImgIds()) == [10, 11, 12]
    assert coco.getImgIds(catIds=[7]) == [11]
    assert coco.getAnnIds(imgIds=[12]) == []
    anns = {a["id"]: a for a in coco.loadAnns(coco.getAnnIds())}
    assert set(anns) == {100, 101, 102}
    for box in BOXES:
        ann = anns[box["id"]]
        assert ann["bbox"] == [box["x"], box["y"], box["w"], box["h"]]
        assert ann["area"] == pytest.approx(box["w"] * box["h"])
        assert (ann["image_id"], ann["category_id"], ann["iscrowd"]) == (box["image_id"], box["category_id"], 0)
        assert ann.get("score") == box.get("score")
    assert "score" not in anns[100] and "score" not in anns[101]
    assert doc["licenses"] == [] and doc["info"] == {"description": "test"}

    parsed = parse_coco(json.loads(path.read_text()))
    assert parsed.categories == (
        CocoCategory(1, "cat", "animal"), CocoCategory(2, "dog", "animal"), CocoCategory(7, "acme logo", None),
    )
    assert parsed.images == (
        CocoImage(10, "a.jpg", 640, 480, (CocoBox(1, 10.0, 20.0, 30.5, 40.0), CocoBox(2, 0.0, 0.0, 640.0, 480.0))),
        CocoImage(11, "b.png", 100, 50, (CocoBox(7, 1.25, 2.5, 3.0, 4.0),)),
        CocoImage(12, "empty.jpg", 32, 32, ()),
    )
    assert set(parsed.image_by_name()) == {"a.jpg", "b.png", "empty.jpg"}


def test_build_refuses_boxes_outside_the_export():
    with pytest.raises(ValueError):
        build_coco(CATEGORIES, IMAGES, [dict(BOXES[0], image_id=999)])


@pytest.mark.parametrize("doc, location", [
    ([], "document"),
    ({"images": [], "annotations": []}, "categories"),
    ({"images": {}, "annotations": [], "categories": []}, "images"),
    ({"images": [], "annotations": None, "categories": []}, "annotations"),
])
def test_top_level_shape(doc, location):
    assert_problem(doc, location)


def test_empty_annotations_are_fine():
    doc = valid_doc()
    doc["annotations"] = []
    assert all(image.boxes == () for image in parse_coco(doc).images)


def test_limits():
    found = problems_of(valid_doc(), max_images=2, max_annotations=2)
    assert any(p.startswith("images:") for p in found) and any(p.startswith("annotations:") for p in found)


def mutate(path: str, value=None, *, delete: bool = False) -> dict:
    """A valid document with one field changed; `path` is like "annotations.0.bbox"."""
    doc = copy.deepcopy(valid_doc())
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key = int(last) if last.isdigit() else last
    if delete:
        del target[key]
    else:
        target[key] = value
    return doc


@pytest.mark.parametrize("path, value, location, words", [
    ("categories.0", "cat", "categories[0]", "object"),
    ("categories.1.id", "2", "categories[1].id", "integer"),
    ("categories.1.id", True, "categories[1].id", "integer"),
    ("categories.1.id", 1, "categories[1].id", "duplicate"),
    ("categories.2.name", "", "categories[2].name", "non-empty"),
    ("categories.2.name", "   ", "categories[2].name", "non-empty"),
    ("categories.2.name", 5, "categories[2].name", "non-empty"),
    ("categories.2.name", "cat", "categories[2].name", "duplicate"),
    ("images.0", None, "images[0]", "object"),
    ("images.1.id", 1.5, "images[1].id", "integer"),
    ("images.1.id", False, "images[1].id", "integer"),
    ("images.1.id", 10, "images[1].id", "duplicate"),
    ("images.1.file_name", "", "images[1].file_name", "non-empty"),
    ("images.1.file_name", 7, "images[1].file_name", "non-empty"),
    ("images.1.file_name", "photos/", "images[1].file_name", "names no file"),
    ("images.1.file_name", "x/..", "images[1].file_name", "names no file"),
    ("images.1.file_name", "other/dir/a.jpg", "images[1].file_name", "images[0]"),
    ("images.1.width", 0, "images[1].width", "positive"),
    ("images.1.height", -3, "images[1].height", "positive"),
    ("images.1.height", 50.0, "images[1].height", "positive"),
    ("images.1.width", True, "images[1].width", "positive"),
    ("annotations.0", [1, 2], "annotations[0]", "object"),
    ("annotations.0.image_id", 999, "annotations[0].image_id", "999"),
    ("annotations.0.image_id", True, "annotations[0].image_id", "True"),
    ("annotations.0.category_id", 3, "annotations[0].category_id", "3"),
    ("annotations.0.category_id", "1", "annotations[0].category_id", "'1'"),
    ("annotations.0.bbox", [1, 2, 3], "annotations[0].bbox", "4 finite numbers"),
    ("annotations.0.bbox", "1,2,3,4", "annotations[0].bbox", "4 finite numbers"),
    ("annotations.0.bbox", [1, 2, "3", 4], "annotations[0].bbox", "4 finite numbers"),
    ("annotations.0.bbox", [1, 2, True, 4], "annotations[0].bbox", "4 finite numbers"),
    ("annotations.0.bbox", [1, 2, float("nan"), 4], "annotations[0].bbox", "4 finite numbers"),
    ("annotations.0.bbox", [1, 2, float("inf"), 4], "annotations[0].bbox", "4 finite numbers"),
    ("annotations.0.bbox", [1, 2, 0, 4], "annotations[0].bbox", "width must be > 0"),
    ("annotations.0.bbox", [1, 2, 3, -4], "annotations[0].bbox", "height must be > 0"),
    ("annotations.0.bbox", [-5, 2, 3, 4], "annotations[0].bbox", "x must be >= 0"),
    ("annotations.0.bbox", [1, -1.5, 3, 4], "annotations[0].bbox", "y must be >= 0"),
    ("annotations.0.bbox", [600, 2, 50, 4], "annotations[0].bbox", "outside the image width 640"),
    ("annotations.0.bbox", [1, 470, 3, 20], "annotations[0].bbox", "outside the image height 480"),
    ("annotations.0.bbox", [640.5, 2, 0.4, 4], "annotations[0].bbox", "width is 0 once clipped"),
])
def test_each_problem_names_its_location(path, value, location, words):
    assert_problem(mutate(path, value), location, words)


@pytest.mark.parametrize("path", ["categories.0.id", "categories.0.name", "images.0.id", "images.0.file_name",
                                  "annotations.0.image_id", "annotations.0.category_id", "annotations.0.bbox"])
def test_missing_required_fields(path):
    location = "{}[{}].{}".format(*path.split("."))
    assert_problem(mutate(path, delete=True), location)


def test_all_problems_are_collected():
    doc = mutate("categories.1.id", "x")
    doc["images"][0]["width"] = 0
    doc["annotations"][2]["bbox"] = [0, 0, 0, 0]
    found = problems_of(doc)
    assert [p.split(":")[0] for p in found] == [
        "categories[1].id", "images[0].width", "annotations[1].category_id", "annotations[2].bbox",
        "annotations[2].bbox",
    ], found


def test_problems_are_capped_at_fifty():
    doc = valid_doc()
    doc["annotations"] = [dict(doc["annotations"][0], id=i, image_id=5000 + i) for i in range(120)]
    found = problems_of(doc)
    assert len(found) == 51
    assert found[0].startswith("annotations[0].image_id:")
    assert found[-1] == "... and 70 more"
    assert len(CocoError(["a"] * 50).problems) == 50


def test_crowd_annotations_are_skipped():
    doc = valid_doc()
    doc["annotations"].append({
        "id": 500, "image_id": 10, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 9999, 9999],
        "segmentation": {"counts": "abc", "size": [480, 640]}, "area": 12.0,
    })
    doc["annotations"][0]["segmentation"] = [[10, 20, 40, 20, 40, 60]]
    doc["annotations"][0]["attributes"] = {"occluded": True}
    parsed = parse_coco(doc)
    assert sum(len(image.boxes) for image in parsed.images) == 3


def test_boxes_within_tolerance_are_clipped():
    doc = valid_doc()
    doc["annotations"][0]["bbox"] = [-0.5, 470.0, 100.0, 10.8]  # 0.5 px left of, 0.8 px below the image
    doc["annotations"][1]["bbox"] = [600.0, 0.0, 41.0, 480.0]  # 1 px past the right edge
    a = parse_coco(doc).image_by_name()["a.jpg"]
    assert a.boxes[0] == CocoBox(1, 0.0, 470.0, 99.5, 10.0)
    assert a.boxes[1] == CocoBox(2, 600.0, 0.0, 40.0, 480.0)


def test_images_without_a_size_are_not_bounded():
    doc = valid_doc()
    del doc["images"][0]["width"]
    doc["images"][0]["height"] = None
    doc["annotations"][0]["bbox"] = [5000.0, 6000.0, 7.0, 8.0]
    a = parse_coco(doc).image_by_name()["a.jpg"]
    assert (a.width, a.height) == (None, None)
    assert a.boxes[0] == CocoBox(1, 5000.0, 6000.0, 7.0, 8.0)


def test_file_names_are_reduced_to_their_basename():
    doc = valid_doc()
    doc["images"][0]["file_name"] = "train2017/sub/a.jpg"
    doc["images"][1]["file_name"] = "C:\\data\\b.png"
    names = parse_coco(doc).image_by_name()
    assert set(names) == {"a.jpg", "b.png", "empty.jpg"}
    assert names["a.jpg"].id == 10 and names["b.png"].id == 11
