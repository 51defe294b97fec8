"""Builds the Celery app from settings: JSON only, queues and routes from the queue table."""

from __future__ import annotations

import logging

from celery import Celery, signals
from kombu import Exchange
from kombu import Queue as KombuQueue

from store.settings import Settings, load_settings
from workers.heap import freeze_startup_heap
import workers.monitor  # noqa: F401 - every worker keeps its entry for the queue page fresh
from services.queues import QUEUES, Queue, unacked_key

log = logging.getLogger(__name__)

TASK_MODULES = [
    "workers.tasks.probe", "workers.tasks.ingest", "workers.tasks.datasets", "workers.tasks.training",
    "workers.tasks.deployments", "workers.tasks.inference",
    "workers.tasks.pipelines", "workers.tasks.evaluation", "workers.tasks.preannotate",
    "workers.tasks.labelstudio",
]


def create_celery(settings: Settings | None = None, *, include_tasks: bool = True, sent_events: bool = True) -> Celery:
    """A Celery app bound to `settings`. The API builds one without importing task modules and
    sends tasks by name; workers build one with `include_tasks` so the tasks register.
    `sent_events=False` makes the sender of interactive calls (services/calls.py): no `task-sent` events, and
    not Celery's current app, so it never stands in for the process's own."""
    from services.registry import task_routes

    settings = settings or load_settings()
    app = Celery("loopline", broker=settings.redis_url, include=TASK_MODULES if include_tasks else [],
                 set_as_current=sent_events)
    exchange = Exchange("loopline", type="direct")
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,       # the Job row is the result store
        task_queues=[KombuQueue(q.value, exchange, routing_key=q.value) for q in Queue],
        task_default_exchange="loopline",
        task_default_queue=Queue.deployment.value,  # never used: every task is routed; see task_routes
        task_create_missing_queues=False,
        task_routes=task_routes(),
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": max(s.visibility_timeout for s in QUEUES.values()),
            "unacked_key": unacked_key(None),
        },
        # Celery's own monitoring (`celery -A workers events`, Flower) sees every task from the moment it
        # is sent: `task-sent` from whoever sends it (the API, a pipeline stage handing on), then the
        # worker's received / started / succeeded (or failed, retried, revoked). ARCHITECTURE.md, Monitoring.
        task_send_sent_event=sent_events,
        worker_send_task_events=True,
    )
    app.loopline_settings = settings
    # services/calls.py sends interactive calls through a twin without `task-sent`; it builds it from here
    app.loopline_quiet_twin = lambda: create_celery(settings, include_tasks=False, sent_events=False)
    return app


@signals.worker_ready.connect
@signals.worker_process_init.connect
def _freeze_startup_heap(**_):
    """Once tasks are imported: in the worker's main process (threads and solo pools run tasks there) and in
    each prefork child. See workers.heap."""
    freeze_startup_heap()


@signals.celeryd_init.connect
def _per_queue_worker_settings(sender=None, instance=None, conf=None, options=None, **_):
    """A pool that serves exactly one queue takes that queue's broker timeout and in-flight key."""
    queues = (options or {}).get("queues") or []
    if isinstance(queues, str):
        queues = [q for q in queues.split(",") if q]
    if len(queues) != 1 or queues[0] not in Queue._value2member_map_:
        return
    queue = Queue(queues[0])
    settings = QUEUES[queue]
    overrides = getattr(instance.app, "loopline_settings", None)
    timeout = (overrides.visibility_timeouts if overrides else {}).get(queue.value, settings.visibility_timeout)
    conf.broker_transport_options = {
        **conf.broker_transport_options,
        "visibility_timeout": timeout,
        "unacked_key": unacked_key(queue),
        "unacked_index_key": f"{unacked_key(queue)}:index",
        "unacked_mutex_key": f"{unacked_key(queue)}:mutex",
        # Interactive work (a caller waits seconds, the message expires in a minute) is not worth keeping
        # for redelivery: without ack emulation a message costs one BRPOP instead of three Redis calls.
        "ack_emulation": settings.redeliver,
    }
    if settings.concurrency and not options.get("concurrency"):
        conf.worker_concurrency = settings.concurrency
    log.info("worker %s serves %s with %s", sender, queue.value, settings)
