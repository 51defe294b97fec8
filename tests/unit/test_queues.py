"""Routes, worker flags and broker settings all come from the one queue table."""

from __future__ import annotations

from celery import signals

from workers.celery_app import create_celery
from services.queues import QUEUES, Queue, unacked_key, worker_argv
from services.registry import KINDS, task_routes


def test_routes_are_derived_from_the_table(settings):
    routes = task_routes()
    assert {r["queue"] for r in routes.values()} == {q.value for q in Queue}
    assert routes["loopline.probe.training"] == {"queue": "training", "routing_key": "training"}
    app = create_celery(settings, include_tasks=False)
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
    assert {q.name for q in app.conf.task_queues} == {q.value for q in Queue}
    written_out = {"loopline.ingest": "augmentation", "loopline.dataset.build": "augmentation",
                   "loopline.checkpoint.train": "training", "loopline.deployment.build": "deployment",
                   "loopline.probe.inference": "inference"}
    for name, queue in written_out.items():  # spelled out here, not derived: the table must say this
        assert app.amqp.router.route({}, name)["queue"].name == queue
    for kind in KINDS.values():
        for queue in kind.queues():
            assert app.amqp.router.route({}, kind.task_name(queue))["queue"].name == queue.value


def test_registered_tasks_carry_their_queue_options(settings):
    app = create_celery(settings)
    app.loader.import_default_modules()
    for queue, spec in QUEUES.items():
        task = app.tasks[f"loopline.probe.{queue.value}"]
        assert task.acks_late is spec.acks_late and task.reject_on_worker_lost is spec.reject_on_worker_lost
        assert task.time_limit == spec.time_limit


def test_worker_flags_follow_the_table():
    argv = worker_argv(Queue.training)
    assert argv[argv.index("--pool") + 1] == "solo" and argv[argv.index("--concurrency") + 1] == "1"
    assert "--disable-prefetch" in argv
    inference = worker_argv(Queue.inference, concurrency=3)
    assert "--disable-prefetch" not in inference and inference[inference.index("--concurrency") + 1] == "3"


def test_single_queue_pool_gets_its_own_broker_timeout(settings):
    app = create_celery(settings.model_copy(update={"visibility_timeouts": {"augmentation": 7}}), include_tasks=False)

    class Instance:
        pass

    instance = Instance()
    instance.app = app
    signals.celeryd_init.send(sender="x@host", instance=instance, conf=app.conf, options={"queues": ["augmentation"]})
    opts = app.conf.broker_transport_options
    assert opts["visibility_timeout"] == 7 and opts["unacked_key"] == unacked_key(Queue.augmentation)
    assert opts["ack_emulation"] is True  # a killed worker's messages come back

    other = create_celery(settings, include_tasks=False)
    instance.app = other
    signals.celeryd_init.send(sender="x@host", instance=instance, conf=other.conf, options={"queues": ["training"]})
    assert other.conf.broker_transport_options["visibility_timeout"] == QUEUES[Queue.training].visibility_timeout


def test_inference_pool_runs_threads_without_redelivery(settings):
    """Interactive calls: one process with a thread per core, and no unacked bookkeeping in Redis."""
    argv = worker_argv(Queue.inference)
    assert argv[argv.index("--pool") + 1] == "threads" and "--concurrency" not in argv
    app = create_celery(settings, include_tasks=False)

    class Instance:
        pass

    instance = Instance()
    instance.app = app
    signals.celeryd_init.send(sender="x@host", instance=instance, conf=app.conf, options={"queues": ["inference"]})
    assert app.conf.broker_transport_options["ack_emulation"] is False

