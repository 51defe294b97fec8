"""handlers.registry and the built-in handlers (detection@1, suggest@1, classification@1). Images are
drawn here with Pillow: each object is a rectangle of its own colour exactly at its box, so a record's
box (or crop) can be checked against the pixels. Pure code: no services are needed."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handlers import ops
from handlers.builtin import BadSample, rng_for, split_of
from handlers.classification import ClassificationHandler
from handlers.detection import DetectionHandler
from handlers.records import Box, LabelMapSpec, Record, Sample
from handlers.registry import ConfigError, Handler, HandlerRegistry, Option, UnknownHandler, default_registry
from handlers.suggest import SuggestHandler

ROOT = Path(__file__).resolve().parents[2]
LABELS = LabelMapSpec(("red", "green", "blue"))
COLOURS = {1: (230, 30, 30), 2: (30, 210, 40), 3: (40, 60, 230)}
BG = (120, 110, 100)


# ---------------------------------------------------------------- helpers

def make_sample(image_id: int, width: int = 320, height: int = 240, boxes=None, fmt: str = "PNG") -> Sample:
    """An image with coloured rectangles (label colour) at its boxes; by default three boxes placed from
    the image id so images differ."""
    if boxes is None:
        r = np.random.default_rng(image_id)
        boxes = []
        for label in (1, 2, 3):
            w, h = int(r.integers(24, 60)), int(r.integers(24, 60))
            boxes.append(Box(label, int(r.integers(0, width - w)), int(r.integers(0, height - h)), w, h))
        boxes = [b for i, b in enumerate(boxes) if not any(_overlap(b, o) for o in boxes[:i])]
    img = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(img)
    for b in boxes:
        draw.rectangle((b.x, b.y, b.x + b.w - 1, b.y + b.h - 1), fill=COLOURS[b.label])
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return Sample(image_id, out.getvalue(), width, height, tuple(boxes))


def _overlap(a: Box, b: Box, pad: int = 6) -> bool:
    return not (a.x + a.w + pad <= b.x or b.x + b.w + pad <= a.x or a.y + a.h + pad <= b.y or b.y + b.h + pad <= a.y)


def decode(record: Record) -> Image.Image:
    img = Image.open(io.BytesIO(record.encoded))
    assert img.format == "JPEG" and img.size == (record.width, record.height) and img.mode == "RGB"
    return img


def colour_share(img: Image.Image, rect, colour, tol: int = 60) -> float:
    """Share of the pixels inside rect (left, top, right, bottom in pixels) within `tol` of `colour`."""
    left, top, right, bottom = (int(round(v)) for v in rect)
    region = np.asarray(img, dtype=np.int16)[top:bottom, left:right]
    assert region.size, rect
    return float((np.abs(region - colour) <= tol).all(axis=2).mean())


def object_rects(record: Record, inset: float = 0.0):
    """(label, pixel rect shrunk by `inset` of its size per side) of each object in a record."""
    for i, label in enumerate(record.labels):
        x0, x1 = record.xmin[i] * record.width, record.xmax[i] * record.width
        y0, y1 = record.ymin[i] * record.height, record.ymax[i] * record.height
        dx, dy = (x1 - x0) * inset, (y1 - y0) * inset
        yield label, (x0 + dx, y0 + dy, x1 - dx, y1 - dy)


def build(handler: Handler, samples, **config) -> list[Record]:
    return list(handler.build(samples, handler.config(config), LABELS))


SAMPLES = [make_sample(i) for i in range(1, 13)]
AUGMENT = {"variations": 4, "crop": 0.3, "flip": True, "rotation": 10, "brightness": 0.3, "contrast": 0.3,
           "size": 160, "validation_fraction": 0.3, "seed": 5}


class Toy(Handler):
    name, version, task, description = "toy", 1, "detection", "a test handler"
    options = {"mode": Option("choice", "a", "a mode", choices=("a", "b")),
               "n": Option("int", 3, "a count", 1, 5), "scale": Option("float", 1.0, "a scale", 0, 2),
               "on": Option("bool", False, "a switch"), "tag": Option("str", "", "a tag")}

    def build(self, samples, config, labels):
        return iter(())


def toy(name="toy", version=1):
    return type("T", (Toy,), {"name": name, "version": version})()


# ---------------------------------------------------------------- registry

def test_register_get_all_sorted():
    reg = HandlerRegistry()
    handlers = [toy("zeta", 1), toy("alpha", 2), toy("alpha", 1), toy("alpha", 10)]
    for h in handlers:
        assert reg.register(h) is h
    assert [h.id for h in reg.all()] == ["alpha@1", "alpha@2", "alpha@10", "zeta@1"]
    assert reg.get("alpha@2") is handlers[1] and reg.get("alpha@10") is handlers[3]


def test_duplicate_registration_is_an_error():
    reg = HandlerRegistry()
    reg.register(toy())
    with pytest.raises(ValueError, match="toy@1 is already registered"):
        reg.register(toy())
    reg.register(toy(version=2))  # another version is fine


@pytest.mark.parametrize("spec", ["nope@1", "toy@2", "toy", "toy@01", "toy@ 1", "@1", "toy@1.0", None])
def test_get_unknown_lists_what_exists(spec):
    reg = HandlerRegistry()
    reg.register(toy())
    reg.register(toy("other", 3))
    with pytest.raises(UnknownHandler) as info:
        reg.get(spec)
    assert isinstance(info.value, LookupError)
    assert info.value.available == ["other@3", "toy@1"]
    assert "other@3, toy@1" in str(info.value)


def test_register_refuses_malformed_handlers():
    reg = HandlerRegistry()
    with pytest.raises(TypeError):
        reg.register(Toy)  # a class, not an instance
    for attrs in ({"name": "Bad Name"}, {"version": 0}, {"version": True}, {"task": "painting"},
                  {"options": {"x": 1}}):
        with pytest.raises(ValueError):
            reg.register(type("B", (Toy,), attrs)())
    assert reg.all() == []


def test_describe_is_json_serialisable():
    for handler in [*default_registry().all(), Toy()]:
        described = json.loads(json.dumps(handler.describe()))
        assert described["id"] == f"{handler.name}@{handler.version}"
        assert set(described) == {"name", "version", "id", "description", "task", "options"}
        assert described["task"] in ("detection", "suggestion", "classification")
        for option in described["options"].values():
            assert set(option) == {"type", "default", "help", "min", "max", "choices"}
            assert "\n" not in option["help"]
    assert Toy().describe()["options"]["mode"]["choices"] == ["a", "b"]


def test_default_registry_has_builtins_and_is_built_once():
    reg = default_registry()
    assert reg is default_registry()
    ids = [h.id for h in reg.all()]
    assert {"detection@1", "suggest@1", "classification@1"} <= set(ids)
    assert reg.get("detection@1").task == "detection"
    assert reg.get("suggest@1").task == "suggestion"
    assert reg.get("classification@1").task == "classification"


PLUGIN = '''
from handlers.registry import Handler, Option

class Toy(Handler):
    name, version, task, description = "plugtoy", 1, "detection", "from a plugin"
    options = {"n": Option("int", 1, "n", 1, 3)}
    def build(self, samples, config, labels):
        return iter(())

class Toy2(Toy):
    version = 2

def pair():
    return [Toy2, type("Other", (Toy,), {"name": "plugother"})()]

class Clash(Toy):
    name = "detection"

NOT_A_HANDLER = 42
'''


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """A real installed distribution (a dist-info folder on sys.path) declaring loopline.handlers."""
    module = f"llplugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    (tmp_path / f"{module}_broken.py").write_text("raise RuntimeError('plugin import fails')\n")
    info = tmp_path / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [loopline.handlers]
        toy = {module}:Toy
        pair = {module}:pair
        broken = {module}_broken:Toy
        missing = {module}:Missing
        notahandler = {module}:NOT_A_HANDLER
        clash = {module}:Clash
        [something.else]
        other = {module}:Toy
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module
    for name in (module, f"{module}_broken"):
        sys.modules.pop(name, None)


def test_entry_point_plugins_load_and_broken_ones_are_skipped(plugin, caplog):
    reg = HandlerRegistry()
    reg.register(DetectionHandler())
    with caplog.at_level(logging.ERROR, logger="handlers.registry"):
        loaded = reg.load_entry_points()
    assert {"plugtoy@1", "plugtoy@2", "plugother@1"} <= set(loaded)
    assert reg.get("plugtoy@2").description == "from a plugin"
    assert reg.get("detection@1").__class__ is DetectionHandler  # the clashing plugin did not replace it
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in ("broken", "missing", "notahandler", "clash"):
        assert f"plugin {name} = {plugin}" in skipped
    # loading again: everything is a duplicate now, logged and skipped, nothing raised
    assert [i for i in reg.load_entry_points() if i.startswith("plug")] == []
    assert HandlerRegistry().load_entry_points("something.else") == ["plugtoy@1"]


# ---------------------------------------------------------------- config

def test_config_fills_defaults_and_is_canonical():
    h = DetectionHandler()
    defaults = h.config({})
    assert defaults == {k: o.default for k, o in h.options.items()}
    assert list(defaults) == sorted(defaults)
    spelled = {k: o.default for k, o in reversed(list(h.options.items()))}
    assert json.dumps(h.config(spelled)) == json.dumps(defaults)
    assert h.config({"rotation": 10, "crop": 0}) == {**defaults, "rotation": 10.0, "crop": 0.0}
    assert type(h.config({"rotation": 10})["rotation"]) is float
    assert type(h.config({"size": 320})["size"]) is int
    assert json.dumps(h.config({"rotation": 10, "crop": 0})) == json.dumps(h.config({"crop": 0.0, "rotation": 10.0}))


def test_config_reports_every_bad_key_with_what_is_allowed():
    with pytest.raises(ConfigError) as info:
        DetectionHandler().config({"flip": 1, "rotation": 50, "variations": True, "size": 512.0,
                                   "colour": "red", "seed": -1, "crop": float("nan"), "brightness": 0.5})
    errors = info.value.errors
    assert errors["flip"] == "must be a boolean (true or false)"
    assert errors["rotation"] == "must be a number between 0 and 45"
    assert errors["variations"] == "must be an integer between 1 and 20"
    assert errors["size"] == "must be an integer between 32 and 2048"
    assert errors["seed"].startswith("must be an integer between 0 and ")
    assert errors["crop"] == "must be a number between 0 and 0.5"
    assert errors["colour"].startswith("unknown option; options are: brightness, contrast, crop, flip")
    assert set(errors) == {"flip", "rotation", "variations", "size", "colour", "seed", "crop"}
    assert isinstance(info.value, ValueError) and "rotation: must be a number between 0 and 45" in str(info.value)
    assert pickle.loads(pickle.dumps(info.value)).errors == errors


def test_config_bool_choice_and_str_strictness():
    h = Toy()
    assert h.config({"on": True, "mode": "b", "tag": "x"})["on"] is True
    with pytest.raises(ConfigError) as info:
        h.config({"on": 0, "mode": "c", "tag": 3, "n": 2.0, "scale": True})
    assert info.value.errors == {"on": "must be a boolean (true or false)", "mode": "must be one of 'a', 'b'",
                                 "tag": "must be a string", "n": "must be an integer between 1 and 5",
                                 "scale": "must be a number between 0 and 2"}
    numeric = Option("choice", 1, "numbers", choices=(1, 2))
    assert numeric.check(True)[1] and numeric.check(1) == (1, None)
    with pytest.raises(ConfigError, match="config: must be an object"):
        h.config(["n", 1])


def test_option_definitions_are_checked():
    with pytest.raises(ValueError, match="default"):
        Option("int", 0, "out of range", 1, 5)
    with pytest.raises(ValueError):
        Option("choice", "a", "no choices")
    with pytest.raises(ValueError):
        Option("list", [], "unknown type")
    assert Option("float", 1, "coerced").default == 1.0


def test_suggest_margins_must_be_ordered():
    with pytest.raises(ConfigError) as info:
        SuggestHandler().config({"margin_min": 0.5, "margin_max": 0.2})
    assert info.value.errors == {"margin_min": "must be <= margin_max (0.2)"}


# ---------------------------------------------------------------- all handlers

HANDLER_CONFIGS = [(DetectionHandler(), AUGMENT),
                   (SuggestHandler(), {"regions": 3, "size": 64, "validation_fraction": 0.3, "seed": 5}),
                   (ClassificationHandler(), {"size": 64, "validation_fraction": 0.3, "seed": 5})]


@pytest.mark.parametrize("handler,config", HANDLER_CONFIGS, ids=lambda v: getattr(v, "name", ""))
def test_deterministic_and_independent_of_sample_order(handler, config):
    first = build(handler, SAMPLES, **config)
    assert first == build(handler, SAMPLES, **config)
    shuffled = build(handler, SAMPLES[::-1][3:] + SAMPLES[::-1][:3], **config)
    key = lambda r: r.source_id  # noqa: E731
    assert sorted(first, key=key) == sorted(shuffled, key=key)
    ids = [r.source_id for r in first]
    assert len(ids) == len(set(ids))
    # shuffled boxes within a sample do not matter either
    flipped = [Sample(s.image_id, s.data, s.width, s.height, s.boxes[::-1]) for s in SAMPLES]
    assert build(handler, flipped, **config) == first


@pytest.mark.parametrize("handler,config", HANDLER_CONFIGS, ids=lambda v: getattr(v, "name", ""))
def test_split_is_per_source_image(handler, config):
    records = build(handler, SAMPLES, **config)
    by_image: dict[int, set] = {}
    for r in records:
        assert r.extra["image/source_image_id"] == int(r.source_id.split(":")[0])
        by_image.setdefault(r.extra["image/source_image_id"], set()).add(r.split)
    assert all(len(splits) == 1 for splits in by_image.values())
    assert {s for splits in by_image.values() for s in splits} == {"train", "validation"}
    for image_id, splits in by_image.items():  # the same seed splits every handler the same way
        assert splits == {split_of(5, image_id, 0.3)}


def test_split_fraction_and_seed():
    ids = range(1, 4001)
    share = sum(split_of(0, i, 0.2) == "validation" for i in ids) / len(ids)
    assert 0.18 < share < 0.22
    assert all(split_of(0, i, 0.0) == "train" for i in ids[:200])
    assert [split_of(0, i, 0.5) for i in ids[:50]] != [split_of(1, i, 0.5) for i in ids[:50]]


def test_same_output_in_another_process():
    code = textwrap.dedent("""
        import hashlib, sys
        sys.path.insert(0, sys.argv[1])
        from tests.unit.test_handlers import SAMPLES, AUGMENT, build
        from handlers.registry import default_registry
        h = hashlib.sha256()
        for r in build(default_registry().get("detection@1"), SAMPLES[:4], **AUGMENT):
            h.update(repr((r.split, r.source_id, r.xmin, r.ymax, r.labels, r.texts)).encode() + r.encoded)
        print(h.hexdigest())
    """)
    here = hashlib.sha256()
    for r in build(DetectionHandler(), SAMPLES[:4], **AUGMENT):
        here.update(repr((r.split, r.source_id, r.xmin, r.ymax, r.labels, r.texts)).encode() + r.encoded)
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345"}, cwd=ROOT)
    assert out.stdout.strip() == here.hexdigest()


@pytest.mark.parametrize("handler,config", HANDLER_CONFIGS, ids=lambda v: getattr(v, "name", ""))
def test_records_fit_the_tfrecord_writer(handler, config):
    tfrecord = pytest.importorskip("handlers.tfrecord")
    for r in build(handler, SAMPLES[:3], **config):
        features = tfrecord.record_features(r)
        assert features["image/object/class/label"] == ("int64", list(r.labels))
        assert features["image/source_image_id"][0] == "int64"
        assert all(0 <= v <= 1 for c in ("xmin", "xmax", "ymin", "ymax") for v in getattr(r, c))
        assert all(a < b for a, b in zip(r.xmin + r.ymin, r.xmax + r.ymax, strict=True))


@pytest.mark.parametrize("handler", [DetectionHandler(), SuggestHandler(), ClassificationHandler()],
                         ids=lambda h: h.name)
def test_bad_samples_raise(handler):
    good = make_sample(1)
    broken = Sample(2, good.data[: len(good.data) // 3], good.width, good.height, good.boxes)
    with pytest.raises(BadSample, match="image 2 cannot be decoded"):
        build(handler, [good, broken])
    with pytest.raises(BadSample, match="catalog says 100x100"):
        build(handler, [Sample(3, good.data, 100, 100, good.boxes)])
    with pytest.raises(BadSample, match="label 4 is not in the label map"):
        build(handler, [Sample(4, good.data, good.width, good.height, (Box(4, 1, 1, 5, 5),))])
    assert issubclass(BadSample, ValueError)


# ---------------------------------------------------------------- detection@1

def test_detection_variations_and_plain_first_variation():
    records = build(DetectionHandler(), SAMPLES, **AUGMENT)
    per_image: dict[int, list[Record]] = {}
    for r in records:
        per_image.setdefault(r.extra["image/source_image_id"], []).append(r)
    for image_id, rs in per_image.items():
        expected = 4 if rs[0].split == "train" else 1
        assert [r.source_id for r in rs] == [f"{image_id}:v{k}" for k in range(expected)]
    # v0 is the plain resized image: the same bytes as a build without any augmentation
    plain = {r.source_id: r for r in build(DetectionHandler(), SAMPLES, size=160, validation_fraction=0.3, seed=5)}
    for r in records:
        if r.source_id.endswith(":v0"):
            assert r == plain[r.source_id]
    assert all(max(r.width, r.height) == 160 for r in records)
    assert all(r.format == "jpeg" and r.texts == tuple(LABELS.name(label) for label in r.labels) for r in records)
    # without `original` every training variation is augmented
    no_original = {r.source_id: r for r in build(DetectionHandler(), SAMPLES, **AUGMENT, original=False)}
    assert any(no_original[k] != plain[k] for k in plain if no_original[k].split == "train")


def test_detection_boxes_stay_on_objects():
    records = build(DetectionHandler(), SAMPLES, **{**AUGMENT, "rotation": 0, "brightness": 0, "contrast": 0,
                                                     "min_visible": 0.5, "validation_fraction": 0.0})
    assert len(records) == 4 * len(SAMPLES)
    n_objects = 0
    for r in records:
        img = decode(r)
        for label, rect in object_rects(r, inset=0.05):
            assert colour_share(img, rect, COLOURS[label]) > 0.9, (r.source_id, label)
            n_objects += 1
        if r.source_id.endswith(":v0"):
            assert len(r.labels) == len(SAMPLES[int(r.source_id.split(":")[0]) - 1].boxes)
    assert n_objects > 2 * len(SAMPLES)


def test_detection_rotated_boxes_contain_objects():
    config = {**AUGMENT, "rotation": 30, "brightness": 0, "contrast": 0, "crop": 0, "validation_fraction": 0.0,
              "min_visible": 0.9}
    for r in build(DetectionHandler(), SAMPLES[:6], **config):
        img = np.asarray(decode(r), dtype=np.int16)
        for i, label in enumerate(r.labels):
            mask = (np.abs(img - COLOURS[label]) <= 50).all(axis=2)
            x0, x1 = r.xmin[i] * r.width, r.xmax[i] * r.width
            y0, y1 = r.ymin[i] * r.height, r.ymax[i] * r.height
            inside = mask[int(y0):int(np.ceil(y1)) + 1, int(x0):int(np.ceil(x1)) + 1].sum()
            assert inside >= 0.97 * mask.sum() and inside > 0
            cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)  # the rotated object covers the box centre
            assert mask[cy, cx]


def test_detection_drops_boxes_mostly_cropped_away():
    """A box is kept exactly when at least min_visible of it is inside the variation's crop. The crop is
    recomputed from the documented draws: default_rng([seed, image, k]), the crop's 3 numbers first."""
    sample = make_sample(1, 400, 300, [Box(1, 0, 0, 80, 60), Box(2, 160, 120, 80, 60)])
    config = {"variations": 20, "crop": 0.5, "flip": False, "validation_fraction": 0.0, "size": 200,
              "min_visible": 0.5, "seed": 3}
    records = build(DetectionHandler(), [sample], **config)
    outcomes = set()
    for k, r in enumerate(records[1:], start=1):
        left, top, right, bottom = ops.random_crop_rect(400, 300, 0.5, rng_for(3, 1, k))
        visible = max(0, min(80, right) - left) * max(0, min(60, bottom) - top) / (80 * 60)
        assert (1 in r.labels) == (visible >= 0.5), (k, visible, r.labels)
        outcomes.add(1 in r.labels)
        if 1 in r.labels:  # clipped to the crop: it starts at the crop's corner, in output pixels
            i = r.labels.index(1)
            assert r.xmin[i] == 0 and r.ymin[i] == 0
            assert r.xmax[i] * r.width == pytest.approx((80 - left) * r.width / (right - left))
    assert outcomes == {True, False}


def test_detection_jpeg_input_and_negatives():
    sample = make_sample(7, 640, 480, fmt="JPEG")
    empty = make_sample(8, 640, 480, boxes=[], fmt="JPEG")
    records = build(DetectionHandler(), [sample, empty], size=320, validation_fraction=0.0)
    assert [(r.width, r.height) for r in records] == [(320, 240), (320, 240)]
    assert records[1].labels == () and records[1].xmin == ()
    assert len(records[0].labels) == len(sample.boxes) and records[0].extra == {"image/source_image_id": 7}


# ---------------------------------------------------------------- suggest@1

def test_suggest_targets_point_at_object_in_region():
    config = {"regions": 5, "size": 96, "validation_fraction": 0.3, "seed": 2}
    records = build(SuggestHandler(), SAMPLES, **config)
    assert len(records) == 5 * sum(len(s.boxes) for s in SAMPLES)
    for r in records:
        image_id, b, reg = r.source_id.split(":")
        assert b.startswith("b") and reg.startswith("r")
        assert len(r.labels) == len(r.xmin) == len(r.texts) == 1 and r.width == r.height == 96
        img = decode(r)
        (label, rect), = object_rects(r, inset=0.1)
        assert colour_share(img, rect, COLOURS[label]) > 0.9, r.source_id
        # the region in the original image contains the box, and grew by at most 60% + shift per side
        sample = SAMPLES[int(image_id) - 1]
        box = [x for x in sample.boxes if x.label == label][0]
        e = r.extra
        assert e["image/source_image_id"] == int(image_id)
        assert e["region/xmin"] <= box.x and e["region/xmax"] >= box.x + box.w
        assert e["region/ymin"] <= box.y and e["region/ymax"] >= box.y + box.h
        assert e["region/xmin"] >= max(0, box.x - 0.7 * box.w - 1e-9)
        assert 0 <= e["region/xmin"] < e["region/xmax"] <= sample.width
        # the target is the box in region coordinates
        rw = e["region/xmax"] - e["region/xmin"]
        assert r.xmin[0] == pytest.approx((box.x - e["region/xmin"]) / rw)
        assert r.xmax[0] == pytest.approx((box.x + box.w - e["region/xmin"]) / rw)
    regions = {(r.extra["region/xmin"], r.extra["region/ymax"]) for r in records}
    assert len(regions) > 0.9 * len(records)  # jittered, not all the same


def test_suggest_target_is_only_its_box_and_region_is_clipped():
    sample = make_sample(3, 200, 150, [Box(1, 0, 0, 50, 40), Box(2, 55, 45, 30, 30)])
    records = build(SuggestHandler(), [sample], regions=4, margin_min=1.0, margin_max=2.0, size=64,
                    validation_fraction=0.0)
    assert len(records) == 8
    for r in records:
        assert len(r.labels) == 1  # the neighbour in the region is ignored
        assert r.extra["region/xmin"] >= 0 and r.extra["region/ymin"] >= 0
    corner = [r for r in records if r.labels == (1,)]
    assert all(r.xmin[0] == 0 and r.ymin[0] == 0 for r in corner)  # clipped at the image corner


# ---------------------------------------------------------------- classification@1

def test_classification_crops_show_their_object():
    records = build(ClassificationHandler(), SAMPLES, size=48, margin=0.1, validation_fraction=0.3)
    assert len(records) == sum(len(s.boxes) for s in SAMPLES)
    for r in records:
        (label,) = r.labels
        assert r.texts == (LABELS.name(label),)
        assert (r.xmin, r.ymin, r.xmax, r.ymax) == ((0.0,), (0.0,), (1.0,), (1.0,))  # the whole crop
        assert r.extra["image/class/label"] == label and r.extra["image/class/text"] == LABELS.name(label)
        img = decode(r)
        assert img.size == (48, 48)
        # the object fills the crop except the margin: 0.1 / 1.2 of each side (less where clipped)
        assert colour_share(img, (48 * 0.12, 48 * 0.12, 48 * 0.88, 48 * 0.88), COLOURS[label]) > 0.95
    zero_margin = build(ClassificationHandler(), SAMPLES[:3], size=48, margin=0.0)
    for r in zero_margin:
        assert colour_share(decode(r), (2, 2, 46, 46), COLOURS[r.labels[0]]) > 0.95


def test_classification_skips_boxes_outside_and_undecoded_empty_images():
    sample = make_sample(5, 100, 80, [Box(1, 10, 10, 20, 20)])
    outside = Sample(5, sample.data, 100, 80, (Box(1, 10, 10, 20, 20), Box(2, 150, 10, 20, 20)))
    assert [r.source_id for r in build(ClassificationHandler(), [outside])] == ["5:b0"]
    empty = Sample(6, b"not an image", 100, 80, ())
    assert build(ClassificationHandler(), [empty]) == [] and build(SuggestHandler(), [empty]) == []
