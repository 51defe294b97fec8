"""Interactive calls: a Celery task on the inference queue whose answer comes back on a Redis list.

Suggestions must answer in tens of milliseconds, so they are not Jobs (no catalog row, no heartbeat):
the caller sends the task with a reply key and waits on BLPOP; the worker pushes one JSON answer there
(with an expiry, so an answer nobody waits for any more does not stay). The message itself expires
(`expires` of the inference queue), so work nobody waits for is dropped rather than run late.

Calls stay out of Celery's task events, which every job and pipeline stage sends (ARCHITECTURE.md,
Monitoring): hundreds of suggestions a second would push the jobs out of Flower's task list, and the
four events of a call (sent, received, started, succeeded) cost more CPU than the rest of its send.
The call task sets `send_events=False` (workers/tasks/inference.py); the message goes through a twin of
the caller's Celery app made with `sent_events=False` (Celery reads `task_send_sent_event` from the app's
configuration on every send and has no per-message switch).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

from services.queues import Queue
from services.registry import message_options

CALLS: dict[str, Queue] = {"suggest": Queue.inference, "detect": Queue.inference}
REPLY_TTL = 60


def task_name(call: str) -> str:
    return f"loopline.call.{call}"


class CallTimeout(TimeoutError):
    pass


def call(celery, runtime, name: str, payload: dict, timeout: float) -> dict:
    """Send call `name` and wait for its answer (a dict); CallTimeout when no worker answers in time."""
    reply = runtime.keys.reply(uuid.uuid4().hex)
    queue = CALLS[name]
    # What `celery inspect` shows of the arguments (kwargsrepr) is the payload's keys and the reply key: Celery's
    # default, a safe repr of everything, cost ~15% of the send's CPU on the suggestion path.
    quiet(celery).send_task(task_name(name), kwargs={"payload": payload, "reply": reply, "sent_at": time.time()},
                            queue=queue.value, routing_key=queue.value, **message_options(queue),
                            argsrepr="()", kwargsrepr=f"payload {list(payload)}, reply {reply}")
    return wait_answer(runtime, reply, timeout)


_quiet_lock = threading.Lock()


def quiet(celery):
    """The caller's Celery app without `task-sent` events (made once per app): what sends call messages."""
    twin = getattr(celery, "loopline_quiet", None)
    if twin is None:
        with _quiet_lock:
            twin = getattr(celery, "loopline_quiet", None)
            if twin is None:
                celery.loopline_quiet = twin = celery.loopline_quiet_twin()
    return twin


def wait_answer(runtime, reply: str, timeout: float) -> dict:
    answer = runtime.redis.blpop([reply], timeout=timeout)
    if answer is None:
        raise CallTimeout(f"no inference worker answered within {timeout:g} s")
    return json.loads(answer[1])


def answer(runtime, reply: str, body: dict) -> None:
    pipe = runtime.redis.pipeline()
    pipe.lpush(reply, json.dumps(body))
    pipe.expire(reply, REPLY_TTL)
    pipe.execute()
