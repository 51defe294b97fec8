"""COCO detection JSON in and out of a project.

`parse_coco` runs at request time, so it is pure and collects every problem it finds: a user fixing an
upload wants the whole list, not one error per round trip. The ingest job then trusts its result.
`build_coco` turns catalog rows into a document that pycocotools and other COCO tools load as is.
Stdlib only, so the API, workers and tests can all import it without the heavy stacks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_PROBLEMS = 50
EDGE_TOLERANCE = 1.0  # px; exporters round box edges, so a box this far past the image is clipped, not refused
MAX_NAME = 128  # the catalog's limit for class names and groups
MAX_FILE_NAME = 512  # the catalog's limit for an image's original name


class CocoError(ValueError):
    """The document is not usable COCO detection JSON.

    `problems` lists up to 50 strings like "annotations[3].bbox: width must be > 0", then
    "... and N more" when there were more, so a 400 response stays small.
    """

    def __init__(self, problems: list[str]):
        problems = list(problems)
        if len(problems) > MAX_PROBLEMS:
            problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more"]
        self.problems = problems
        super().__init__("invalid COCO document: " + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""))


@dataclass(frozen=True)
class CocoCategory:
    id: int
    name: str
    supercategory: str | None


@dataclass(frozen=True)
class CocoBox:
    """A box in pixel coordinates, COCO's [x, y, w, h], already clipped to its image when it has a size."""

    category_id: int
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str  # basename only: uploads are matched by name, directories mean nothing here
    width: int | None
    height: int | None
    boxes: tuple[CocoBox, ...]


@dataclass(frozen=True)
class CocoDataset:
    categories: tuple[CocoCategory, ...]
    images: tuple[CocoImage, ...]

    def image_by_name(self) -> dict[str, CocoImage]:
        """Images keyed by file_name basename (unique, parse_coco guarantees it)."""
        return {image.file_name: image for image in self.images}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true must not pass as 1


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _basename(file_name: str) -> str:
    """Last path component; both separators, since COCO files come from Windows tools too."""
    return re.split(r"[\\/]", file_name)[-1].strip()


def parse_coco(doc: object, *, max_images: int = 100_000, max_annotations: int = 2_000_000) -> CocoDataset:
    """Validate a decoded COCO detection document and return its categories, images and boxes.

    Raises CocoError listing every problem. Crowd annotations (`iscrowd: 1`, RLE regions) are skipped:
    they are not boxes of single objects. `segmentation` and unknown keys are ignored.
    """
    problems: list[str] = []
    if not isinstance(doc, dict):
        raise CocoError(["document: must be a JSON object"])
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            problems.append(f"{key}: must be a list" if key in doc else f"{key}: missing")
    if problems:
        raise CocoError(problems)
    if len(doc["images"]) > max_images:
        problems.append(f"images: {len(doc['images'])} images, more than the limit of {max_images}")
    if len(doc["annotations"]) > max_annotations:
        problems.append(f"annotations: {len(doc['annotations'])} annotations, more than the limit of {max_annotations}")
    if problems:  # refuse before walking a huge document
        raise CocoError(problems)

    categories: dict[int, CocoCategory] = {}
    names: set[str] = set()
    for i, cat in enumerate(doc["categories"]):
        at = f"categories[{i}]"
        if not isinstance(cat, dict):
            problems.append(f"{at}: must be an object")
            continue
        cid, name, sup = cat.get("id"), cat.get("name"), cat.get("supercategory")
        if not _is_int(cid):
            problems.append(f"{at}.id: must be an integer")
        elif cid in categories:
            problems.append(f"{at}.id: duplicate category id {cid}")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{at}.name: must be a non-empty string")
            name = None
        elif len(name.strip()) > MAX_NAME:
            problems.append(f"{at}.name: longer than {MAX_NAME} characters")
        elif name.strip() in names:  # classes are matched by name, so two would collapse into one
            problems.append(f"{at}.name: duplicate category name {name.strip()!r}")
        else:
            names.add(name.strip())
        sup = sup.strip() if isinstance(sup, str) and sup.strip() else None
        if sup is not None and len(sup) > MAX_NAME:
            problems.append(f"{at}.supercategory: longer than {MAX_NAME} characters")
        if _is_int(cid) and cid not in categories:
            categories[cid] = CocoCategory(cid, name.strip() if name else "", sup)

    images: dict[int, tuple[str, int | None, int | None]] = {}
    basenames: dict[str, int] = {}
    for i, img in enumerate(doc["images"]):
        at = f"images[{i}]"
        if not isinstance(img, dict):
            problems.append(f"{at}: must be an object")
            continue
        iid, file_name = img.get("id"), img.get("file_name")
        if not _is_int(iid):
            problems.append(f"{at}.id: must be an integer")
        elif iid in images:
            problems.append(f"{at}.id: duplicate image id {iid}")
        base = _basename(file_name) if isinstance(file_name, str) else ""
        if not isinstance(file_name, str) or not file_name.strip():
            problems.append(f"{at}.file_name: must be a non-empty string")
        elif base in ("", ".", ".."):
            problems.append(f"{at}.file_name: {file_name!r} names no file")
        elif len(base) > MAX_FILE_NAME:
            problems.append(f"{at}.file_name: longer than {MAX_FILE_NAME} characters")
        elif base in basenames:
            problems.append(f"{at}.file_name: {base!r} is also images[{basenames[base]}]'s file name")
        else:
            basenames[base] = i
        size: list[int | None] = []
        for key in ("width", "height"):
            value = img.get(key)
            if value is not None and not (_is_int(value) and value > 0):
                problems.append(f"{at}.{key}: must be a positive integer")
                value = None
            size.append(value)
        if _is_int(iid) and iid not in images:  # registered even when other fields are bad: no cascades
            images[iid] = (base, size[0], size[1])

    boxes: dict[int, list[CocoBox]] = {iid: [] for iid in images}
    for i, ann in enumerate(doc["annotations"]):
        at = f"annotations[{i}]"
        if not isinstance(ann, dict):
            problems.append(f"{at}: must be an object")
            continue
        if ann.get("iscrowd") in (1, True):
            continue
        iid, cid, bbox = ann.get("image_id"), ann.get("category_id"), ann.get("bbox")
        if not _is_int(iid) or iid not in images:
            problems.append(f"{at}.image_id: {iid!r} is not the id of an image")
            iid = None
        if not _is_int(cid) or cid not in categories:
            problems.append(f"{at}.category_id: {cid!r} is not the id of a category")
            cid = None
        box = _check_bbox(bbox, images[iid][1:] if iid is not None else (None, None), f"{at}.bbox", problems)
        if box is not None and iid is not None and cid is not None:
            boxes[iid].append(CocoBox(cid, *box))

    if problems:
        raise CocoError(problems)
    return CocoDataset(
        categories=tuple(categories.values()),
        images=tuple(CocoImage(iid, base, w, h, tuple(boxes[iid])) for iid, (base, w, h) in images.items()),
    )


def _check_bbox(bbox: object, size: tuple[int | None, int | None], at: str, problems: list[str]):
    """The box clipped to the image, or None after recording why it is unusable.

    Each edge may be up to EDGE_TOLERANCE past the image (or past 0 on an image of unknown size),
    since float exports round; farther than that the box is for some other image or wrong.
    """
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        problems.append(f"{at}: must be a list of 4 finite numbers [x, y, w, h]")
        return None
    out: list[float] = []
    for coord, dim, start, extent, limit in (("x", "width", bbox[0], bbox[2], size[0]),
                                             ("y", "height", bbox[1], bbox[3], size[1])):
        end = start + extent
        if extent <= 0:
            problems.append(f"{at}: {dim} must be > 0")
        elif start < -EDGE_TOLERANCE:
            problems.append(f"{at}: {coord} must be >= 0")
        elif limit is not None and end > limit + EDGE_TOLERANCE:
            problems.append(f"{at}: {coord} + {dim} = {end:g} is outside the image {dim} {limit}")
        elif (min(end, limit) if limit is not None else end) - max(start, 0) <= 0:
            problems.append(f"{at}: {dim} is 0 once clipped to the image")
        else:
            lo = float(max(start, 0))
            out += [lo, float(min(end, limit) if limit is not None else end) - lo]
    if len(out) < 4:
        return None
    return out[0], out[2], out[1], out[3]


def build_coco(categories: list[dict], images: list[dict], boxes: list[dict], *, info: dict | None = None) -> dict:
    """A COCO detection document from catalog rows.

    `supercategory` is the class's group, or "" (COCO tools expect a string). `score` is written only
    for model boxes that have one. Image width/height are omitted when unknown. Raises ValueError when
    a box names an image or category not given: that is a bug in the caller, not bad data.
    """
    cat_ids = {int(c["id"]) for c in categories}
    img_ids = {int(i["id"]) for i in images}
    out_images = []
    for img in images:
        entry = {"id": int(img["id"]), "file_name": str(img["file_name"])}
        for key in ("width", "height"):
            if img.get(key) is not None:
                entry[key] = int(img[key])
        out_images.append(entry)
    annotations = []
    for box in boxes:
        if int(box["image_id"]) not in img_ids or int(box["category_id"]) not in cat_ids:
            raise ValueError(f"box {box.get('id')!r} names an image or category that is not exported")
        x, y, w, h = (float(box[k]) for k in ("x", "y", "w", "h"))
        ann = {
            "id": int(box["id"]), "image_id": int(box["image_id"]), "category_id": int(box["category_id"]),
            "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
        }
        if box.get("score") is not None:
            ann["score"] = float(box["score"])
        annotations.append(ann)
    return {
        "info": dict(info) if info is not None else {"description": "exported by loopline", "version": "1.0"},
        "licenses": [],
        "images": out_images,
        "annotations": annotations,
        "categories": [
            {"id": int(c["id"]), "name": str(c["name"]), "supercategory": c.get("group") or ""}
            for c in categories
        ],
    }
