"""Pipeline runs: images as URLs or bytes through download → preprocess → classify | suggest | detect on the
inference queue, as one Celery chain; the API waits for the last stage's answer (see services/pipelines.py)."""

from __future__ import annotations

import time

from celery import chain
from flask import request
from flask.views import MethodView
from marshmallow import ValidationError

from api.auth import require_role
from api.blueprint import Blueprint
from api.deployments import require_active
from api.errors import ApiError, load_input
from api.extensions import celery, runtime
from api.inputs import load_json
from api.metrics import observe
from api.model_schemas import (
    PipelineList, PipelineRunForm, PipelineRunIn, PipelineRunOut, PipelineRunUpload, RegionIn,
)
from api.uploads import uploaded_files
from store.schema import Role
from services.calls import CallTimeout, wait_answer
from services.pipelines import PIPELINES, STAGES, PlanError, new_run, plan, stage_task_name
from services.queues import Queue
from services.registry import message_options
from services.uploads import check_urls

bp = Blueprint("pipelines", __name__, url_prefix="/api/pipelines", description="Inference pipelines")


@bp.route("")
class Pipelines(MethodView):
    @bp.response(200, PipelineList)
    def get(self):
        """Named pipelines and the stages they chain (each takes and gives a kind of thing)."""
        return {"pipelines": PIPELINES, "stages": {k: {"takes": t, "gives": g} for k, (t, g) in STAGES.items()}}


@bp.route("/<string:name>/runs")
class Runs(MethodView):
    @bp.response(200, PipelineRunOut)
    @bp.doc(requestBody={"required": True, "content": {
        "application/json": {"schema": PipelineRunIn},
        "multipart/form-data": {"schema": PipelineRunUpload},
    }})
    def post(self, name):
        """Run pipeline (or stage) `name` on a batch: JSON `items` of URLs, or multipart `files` (JPEG, PNG,
        WebP, GIF bytes). `then` names further stages to hand the output to. 200 with a result or an error
        per item; 422 when no item could be processed; 409 without an active deployment for the model stage."""
        started = time.perf_counter()
        items, raw, project_id, then, threshold = _inputs()
        require_role(project_id, Role.annotator)
        try:
            run_plan = plan(name, then, ["image" if i in raw else "url" for i in range(len(items))])
        except KeyError:
            raise ApiError(404, f"unknown pipeline or stage {name!r}; pipelines: {', '.join(PIPELINES)}; stages: "
                                f"{', '.join(STAGES)}") from None
        except PlanError as exc:
            raise ApiError(400, str(exc), code="invalid_pipeline", fields={"then": [str(exc)]}) from None
        deployment_id = None
        if run_plan.task:
            deployment_id = require_active(project_id, run_plan.task, f" for stage {run_plan.stages[-1]!r}").id
        answer = run_chain(run_plan.stages, items, raw, deployment_id, threshold)
        timings = {**answer["timings"], "total_ms": round((time.perf_counter() - started) * 1000, 2)}
        failed = [i for i in answer["items"] if "error" in i]
        observe("pipeline", deployment_id, timings, outcome="ok" if len(failed) < len(items) else "422")
        body = {"pipeline": name, "stages": run_plan.stages, "deployment_id": deployment_id,
                "items": answer["items"], "timings": timings}
        if len(failed) == len(items):
            first = failed[0]["error"]
            raise ApiError(422, f"no item could be processed; item {failed[0]['index']}: {first['message']}",
                           code=first["reason"], items=answer["items"])
        return body


def _inputs() -> tuple[list[dict], dict[int, bytes], int, list[str], float | None]:
    """(items, uploaded bytes by item index, project id, then, threshold) from JSON or multipart, or 400."""
    settings = runtime().settings
    if request.mimetype == "multipart/form-data":
        form = load_input(PipelineRunForm(), request.form.to_dict())
        files = uploaded_files("files", what="images", form=True)
        if not 1 <= len(files) <= 64:
            raise ApiError(400, "send 1 to 64 images as 'files'", fields={"files": ["1 to 64 images"]})
        raw = {}
        for i, f in enumerate(files):
            data = f.read(settings.max_image_bytes + 1)
            if len(data) > settings.max_image_bytes:
                raise ApiError(413, f"file {i} ({f.filename}) is over {settings.max_image_bytes} bytes")
            raw[i] = data
        regions = _regions(form["regions"], len(files))
        then = [s.strip() for s in form["then"].split(",") if s.strip()]
        return [{"name": f.filename or f"file {i}", **({"region": r} if r else {})} for i, (f, r) in
                enumerate(zip(files, regions, strict=True))], raw, form["project_id"], then, form.get("threshold")
    if not request.is_json:
        raise ApiError(415, "send JSON with 'items' of URLs, or multipart/form-data with 'files'")
    data = load_input(PipelineRunIn(), request.get_json(silent=True) or {})
    check_urls(runtime().settings, [i["url"] for i in data["items"]], field="items")
    return [dict(i) for i in data["items"]], {}, data["project_id"], data["then"], data.get("threshold")


def _regions(text: str, n: int) -> list[dict | None]:
    if not text:
        return [None] * n
    try:
        regions = load_json(text, root="regions")
        if not isinstance(regions, list) or len(regions) != n:
            raise ValueError(f"a list of {n} (one per file)")
        return [None if r is None else RegionIn().load(r) for r in regions]
    except (ValueError, ValidationError) as exc:
        raise ApiError(400, f"regions: {exc}", fields={"regions": [str(exc)]}) from None


def run_chain(stages: list[str], items: list[dict], raw: dict[int, bytes], deployment_id: int | None,
              threshold: float | None = None) -> dict:
    """Send the stages as one Celery chain and wait for the last one's answer (or 503/502)."""
    rt, settings = runtime(), runtime().settings
    run_id = new_run(rt, items, raw)
    reply = rt.keys.reply(run_id)
    state = {"run": run_id, "items": items, "stages": stages, "deployment_id": deployment_id, "reply": reply,
             "timings": {}, "limits": {"max_bytes": settings.max_image_bytes, "max_pixels": settings.max_image_pixels}}
    if threshold is not None:
        state["threshold"] = threshold
    options = {"queue": Queue.inference.value, "routing_key": Queue.inference.value, **message_options(Queue.inference)}
    first, *rest = stages
    signatures = [celery().signature(stage_task_name(first), args=(state,), **options)]
    signatures += [celery().signature(stage_task_name(s), **options) for s in rest]
    chain(*signatures).apply_async()
    try:
        answer = wait_answer(rt, reply, settings.pipeline_timeout)
    except CallTimeout as exc:
        raise ApiError(503, f"{exc}; is the inference pool running?") from None
    if not answer.get("ok"):
        raise ApiError(502, f"the pipeline failed: {answer.get('error')}")
    return answer
