"""Celery side of loopline: the queue table, the job machinery, and one task module per job kind.

Start a pool with `celery -A workers worker -Q <queue>` (the app lives in `workers.celery`), or with
`loopline worker <queue>`, which adds the pool flags the queue table prescribes.
"""
