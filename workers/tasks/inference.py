"""Interactive calls on the inference queue (see services/calls.py). onnxruntime only, never TensorFlow."""

from __future__ import annotations

import time

from celery import current_app, shared_task

from services.calls import answer, task_name
from workers.context import runtime_for
from services.queues import Queue
from services.registry import task_options

_STATE: dict[int, tuple] = {}  # per process: (Models, Images), made after the fork


def worker_state():
    from services.inference import Images, Models

    rt = runtime_for(current_app)
    if id(rt) not in _STATE:
        _STATE[id(rt)] = (Models(rt), Images(rt, rt.settings.image_cache_bytes))
    return rt, _STATE[id(rt)]


def _answer_call(payload: dict, reply: str, sent_at: float, run) -> None:
    """One interactive call: the deployment's model and the decoded image from this process's caches, `run(model,
    image)` for the answer, its timings added; any failure is the answer's reason instead of a timeout."""
    started = time.perf_counter()
    queue_ms = max(0.0, (time.time() - sent_at) * 1000)
    rt, (models, images) = worker_state()
    try:
        loaded = models.get(payload["deployment_id"])
        t = time.perf_counter()
        image = images.get(payload["blob_key"])
        image_ms = (time.perf_counter() - t) * 1000
        result = run(loaded, image)
        body = {"ok": True, **result, "timings": {
            "queue_wait_ms": round(queue_ms, 2), "image_load_ms": round(image_ms, 2),
            "model_ms": round(result.pop("model_ms"), 2),
            "worker_ms": round((time.perf_counter() - started) * 1000, 2)}}
    except Exception as exc:  # noqa: BLE001 - the caller gets the reason instead of a timeout
        body = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    answer(rt, reply, body)


@shared_task(name=task_name("suggest"), ignore_result=True, send_events=False,  # no task events: services/calls.py
             **task_options(Queue.inference))
def suggest_call(payload: dict, reply: str, sent_at: float) -> None:
    from services.inference import suggest

    _answer_call(payload, reply, sent_at, lambda model, image: suggest(model, image, tuple(payload["region"])))


@shared_task(name=task_name("detect"), ignore_result=True, send_events=False,  # no task events: services/calls.py
             **task_options(Queue.inference))
def detect_call(payload: dict, reply: str, sent_at: float) -> None:
    """The active detector over a whole image (a click answered by the detection that contains it)."""
    from services.inference import detect

    _answer_call(payload, reply, sent_at, lambda model, image: detect(model, image, float(payload["threshold"])))
