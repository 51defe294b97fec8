"""Pipeline stages as Celery tasks on the inference queue, chained by the API (see services/pipelines.py).
The last stage answers on the run's reply key; an unexpected error answers at once and stops the chain.
Every stage task returns normally, so Celery's events (Flower, `celery events`) show each one succeeded:
a stage that ends the run early drops the rest of the chain from its own request before returning."""

from __future__ import annotations

from celery import shared_task

from services.calls import answer
from services.pipelines import STAGES, stage_task_name
from services.queues import Queue
from services.registry import task_options
from workers.tasks.inference import worker_state


def _register(stage: str) -> None:
    def run(task, state: dict) -> dict:
        from services.pipelines import outcome, run_stage

        rt, (models, _) = worker_state()
        try:
            state = run_stage(stage, state, rt, models, rt.settings)
        except Exception as exc:  # noqa: BLE001 - the caller gets the reason, not a timeout
            error = f"stage {stage}: {type(exc).__name__}: {exc}"
            answer(rt, state["reply"], {"ok": False, "error": error})
            task.request.chain = None  # ends the chain: Celery sends the next stage from the request after the return
            return {"run": state["run"], "ok": False, "error": error}
        if state["stages"][-1] == stage:
            answer(rt, state["reply"], {"ok": True, "items": outcome(state), "timings": state["timings"]})
            return {"run": state["run"], "ok": True}  # the answer is out; nothing follows
        return state

    run.__name__ = run.__qualname__ = f"stage_{stage}"
    shared_task(name=stage_task_name(stage), bind=True, ignore_result=True, **task_options(Queue.inference))(run)


for _stage in STAGES:
    _register(_stage)
