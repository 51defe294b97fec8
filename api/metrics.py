"""Prometheus metrics of model serving, at `GET /metrics` (no token, as scrapers expect; it holds
deployment ids and timings only).

Every API process observes the suggestions and pipeline runs it answered: requests per deployment and
outcome, and where their time went (queue wait, image load, model, total). Under gunicorn the processes
share one multiprocess folder (`api/gunicorn_conf.py`), and a scrape of any of them sums them all.
"""

from __future__ import annotations

import os

from flask import Response
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from api.blueprint import Blueprint

bp = Blueprint("metrics", __name__, description="Prometheus metrics")

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.4, 1.0, 2.5, 5.0)
LABELS = ("kind", "deployment")
REQUESTS = Counter("loopline_inference_requests", "Suggestions and pipeline runs answered, by deployment and outcome",
                   (*LABELS, "outcome"))
QUEUE_WAIT = Histogram("loopline_inference_queue_wait_seconds", "From sending the task to a worker starting it",
                       LABELS, buckets=BUCKETS)
IMAGE_LOAD = Histogram("loopline_inference_image_load_seconds", "Reading and decoding the image (0 when cached)",
                       LABELS, buckets=BUCKETS)
MODEL = Histogram("loopline_inference_model_seconds", "The onnxruntime call", LABELS, buckets=BUCKETS)
UNPREDICTED = Counter("loopline_label_studio_unpredicted_tasks", "Label Studio tasks answered without a prediction "
                      "(so Label Studio asks again), by reason", ("reason",))
TOTAL = Histogram("loopline_inference_request_seconds", "The whole request inside the API", LABELS, buckets=BUCKETS)


def observe(kind: str, deployment_id: int | None, timings: dict | None, outcome: str = "ok") -> None:
    labels = (kind, str(deployment_id) if deployment_id is not None else "none")
    REQUESTS.labels(*labels, outcome).inc()
    for histogram, key in ((QUEUE_WAIT, "queue_wait_ms"), (IMAGE_LOAD, "image_load_ms"), (MODEL, "model_ms"),
                           (TOTAL, "total_ms")):
        if timings and key in timings:
            histogram.labels(*labels).observe(timings[key] / 1000)


@bp.route("/metrics")
class Metrics(MethodView):
    @bp.doc(security=[], responses={"200": {"description": "the Prometheus text format", "content": {
        "text/plain": {"schema": {"type": "string"}}}}})
    def get(self):
        """Metrics in the Prometheus text format."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
