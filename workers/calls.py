"""Interactive calls: a Celery task on the inference queue whose answer comes back on a Redis list.

Suggestions must answer in tens of milliseconds, so they are not Jobs (no catalog row, no heartbeat):
the caller sends the task with a reply key and waits on BLPOP; the worker pushes one JSON answer there
(with an expiry, so an answer nobody waits for any more does not stay). The message itself expires
(`expires` of the inference queue), so work nobody waits for is dropped rather than run late.
"""

from __future__ import annotations

import json
import time
import uuid

from workers.queues import Queue
from workers.registry import message_options

CALLS: dict[str, Queue] = {"suggest": Queue.inference}
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
    celery.send_task(task_name(name), kwargs={"payload": payload, "reply": reply, "sent_at": time.time()},
                     queue=queue.value, routing_key=queue.value, **message_options(queue),
                     argsrepr="()", kwargsrepr=f"payload {list(payload)}, reply {reply}")
    return wait_answer(runtime, reply, timeout)


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
