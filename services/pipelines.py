"""Pipelines: stages that run as a Celery chain on the inference queue, GraphPipe style.

Each item of a run is a URL or uploaded image bytes and moves through typed stages:

    url --download--> image --preprocess--> tensor --classify--> classes
                                                   --suggest---> box
                                                   --detect----> detections

A request names a pipeline (`classify`, `suggest`) or a single stage, and may name the stages to hand
the output on to (`then`): the client can sequence stage by stage, let the server run the whole chain,
or anything between. Clients send JPEG bytes or URLs, never tensors. Images and tensors travel between
stages in Redis (raw bytes, short expiry), messages carry only their keys. A stage that cannot handle an
item marks it with a reason and the later stages pass it by, so one bad URL does not sink a batch.
No TensorFlow, no Flask: the API validates with `plan`, the inference pool runs `run_stage`.
"""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import dataclass

import numpy as np

STAGES: dict[str, tuple[str, str]] = {  # stage -> (what it takes, what it gives)
    "download": ("url", "image"),
    "preprocess": ("image", "tensor"),
    "classify": ("tensor", "classes"),
    "suggest": ("tensor", "box"),
    "detect": ("tensor", "detections"),
}
MODEL_TASKS = {"classify": "classification", "suggest": "suggestion", "detect": "detection"}  # stage -> model task
PIPELINES: dict[str, list[str]] = {
    "classify": ["download", "preprocess", "classify"],
    "suggest": ["download", "preprocess", "suggest"],
    "detect": ["download", "preprocess", "detect"],
}
SCRATCH_TTL = 120


def stage_task_name(stage: str) -> str:
    return f"loopline.stage.{stage}"


class PlanError(ValueError):
    """The stages cannot run in this order on these items; the message says which and why."""


@dataclass(frozen=True)
class RunPlan:
    stages: list[str]
    task: str | None  # the deployment task of the model stage, if any


def plan(name: str, then: list[str], kinds: list[str]) -> RunPlan:
    """Check a run: `name` is a pipeline or a stage, `then` the stages after it, `kinds` each item's start
    ("url" or "image"). Raises PlanError (unknown stage, wrong order) or KeyError (unknown name)."""
    if name in PIPELINES:
        stages = list(PIPELINES[name])
    elif name in STAGES:
        stages = [name]
    else:
        raise KeyError(name)
    unknown = [s for s in then if s not in STAGES]
    if unknown:
        raise PlanError(f"unknown stages {unknown}; stages: {', '.join(STAGES)}")
    stages += then
    for kind in set(kinds):
        current = kind
        for stage in stages:
            takes, gives = STAGES[stage]
            if stage == "download" and current == "image":
                continue  # uploaded bytes need no download
            if takes != current:
                raise PlanError(f"stage {stage!r} takes {takes}s but gets {current}s here (stages {stages}; items "
                                f"given as {kind}s)")
            current = gives
    models = [s for s in stages if s in MODEL_TASKS]
    if "preprocess" in stages and not models:
        raise PlanError("preprocess follows the spec of a deployment: end the run with classify, suggest or detect")
    if len(models) > 1:
        raise PlanError(f"one model stage per run, not {models}")
    if models and stages[-1] != models[0]:
        raise PlanError(f"the model stage {models[0]!r} must be the last")
    return RunPlan(stages, MODEL_TASKS[models[0]] if models else None)


def scratch_key(runtime, run_id: str, index: int, what: str) -> str:
    return f"{runtime.keys.prefix}:run:{run_id}:{index}:{what}"


def new_run(runtime, items: list[dict], raw_images: dict[int, bytes]) -> str:
    """Put uploaded images in Redis for the first stage; return the run id."""
    run_id = uuid.uuid4().hex
    if raw_images:
        pipe = runtime.redis_raw.pipeline()
        for index, data in raw_images.items():
            pipe.set(scratch_key(runtime, run_id, index, "image"), data, ex=SCRATCH_TTL)
            items[index]["image"] = scratch_key(runtime, run_id, index, "image")
        pipe.execute()
    return run_id


def run_stage(stage: str, state: dict, runtime, models, settings) -> dict:
    """Apply one stage to every item still alive; returns the new state (with the stage's time)."""
    start = time.perf_counter()
    alive = [(i, item) for i, item in enumerate(state["items"]) if "error" not in item]
    if stage == "download":
        _download(alive, state, runtime, settings)
    elif stage == "preprocess":
        _preprocess(alive, state, runtime, models)
    else:
        _model(stage, alive, state, runtime, models)
    state["timings"][f"{stage}_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return state


def _fail(item: dict, reason: str, message: str) -> None:
    item["error"] = {"reason": reason, "message": message}


def _download(alive, state, runtime, settings) -> None:
    from services.fetch import FetchRefused, fetch
    from services.ingest import fetch_policy

    policy = fetch_policy(settings)
    for i, item in alive:
        if "url" not in item:
            continue
        try:
            data = fetch(item["url"], policy).data
        except FetchRefused as exc:
            _fail(item, exc.reason, str(exc))
            continue
        key = scratch_key(runtime, state["run"], i, "image")
        runtime.redis_raw.set(key, data, ex=SCRATCH_TTL)
        item["image"] = key


def _preprocess(alive, state, runtime, models) -> None:
    from handlers.imaging import ImageLimits, ImageRejected, upright_rgb
    from handlers.ops import region_in_image, resized_crop
    from models.predictor import to_input

    spec = models.get(state["deployment_id"]).spec
    limits = ImageLimits(max_bytes=state["limits"]["max_bytes"], max_pixels=state["limits"]["max_pixels"])
    for i, item in alive:
        data = runtime.redis_raw.get(item["image"])
        if data is None:
            _fail(item, "expired", "the image left the scratch space before its stage ran; send it again")
            continue
        try:
            image = upright_rgb(data, limits)  # the upload checks: formats, limits, EXIF
        except ImageRejected as exc:
            _fail(item, exc.reason, str(exc))
            continue
        if "region_pct" in item:  # a region in percent of the image (Label Studio)
            pct = item["region_pct"]
            item["region"] = {"x": pct["x"] * image.width / 100, "y": pct["y"] * image.height / 100,
                              "w": pct["width"] * image.width / 100, "h": pct["height"] * image.height / 100}
        region = item.get("region")
        box = (0.0, 0.0, float(image.width), float(image.height)) if region is None else region_in_image(
            region["x"], region["y"], region["w"], region["h"], image.width, image.height)
        if box is None:
            _fail(item, "region", f"region {region} leaves the {image.width}x{image.height} image")
            continue
        crop, _ = resized_crop(image, [], box, spec.size, spec.size)
        buf = io.BytesIO()
        np.save(buf, to_input(crop, spec), allow_pickle=False)
        key = scratch_key(runtime, state["run"], i, "tensor")
        runtime.redis_raw.set(key, buf.getvalue(), ex=SCRATCH_TTL)
        item.update(tensor=key, width=image.width, height=image.height, crop=list(box))


def _model(stage, alive, state, runtime, models) -> None:
    from models.detection import THRESHOLD, decode
    from services.inference import box_in_image, detections_in_image, top_class

    loaded = models.get(state["deployment_id"])
    ready = []
    for i, item in alive:
        data = runtime.redis_raw.get(item["tensor"])
        if data is None:
            _fail(item, "expired", "the tensor left the scratch space before its stage ran; send the image again")
        else:
            ready.append((item, np.load(io.BytesIO(data), allow_pickle=False)))
    if not ready:
        return
    start = time.perf_counter()
    out = loaded.predictor.run(np.stack([t for _, t in ready]))
    state["timings"]["model_ms"] = round((time.perf_counter() - start) * 1000, 2)
    names = loaded.label_map
    if stage == "detect":  # the one decoding every consumer uses (models.detection)
        found = decode(out, threshold=state.get("threshold", THRESHOLD))
        for (item, _), detections in zip(ready, found, strict=True):
            item["result"] = {"detections": detections_in_image(detections, item["crop"], item["width"],
                                                                item["height"], names)}
        return
    for row, (item, _) in enumerate(ready):
        scores = out["class_scores"][row]
        item["result"] = {**top_class(scores, names),
                          "scores": {n["name"]: round(float(s), 6) for n, s in zip(names, scores, strict=True)}}
        if stage == "suggest":
            item["result"]["box"] = box_in_image(out["box"][row], item["crop"], item["width"], item["height"])


def outcome(state: dict) -> list[dict]:
    """What the client gets per item: its result or its error, and for non-model runs what the last stage made."""
    out = []
    for i, item in enumerate(state["items"]):
        entry = {"index": i, **{k: item[k] for k in ("url", "name") if k in item}}
        if "error" in item:
            entry["error"] = item["error"]
        elif "result" in item:
            entry["result"] = item["result"]
            entry["image_size"] = [item["width"], item["height"]]
        else:
            entry["result"] = {k: item[k] for k in ("width", "height") if k in item} or {"fetched": True}
        out.append(entry)
    return out
