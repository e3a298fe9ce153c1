"""The Celery app: `celery -A tasks worker` (Procfile), with Redis as the broker (REDIS_URL).

The feeder sends tasks.report(kind, size, seed); each task counts itself in Redis so that the
feeder knows when all are done.
"""

import os

import redis
from celery import Celery

import work

app = Celery("tasks", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_counter = None


@app.task(name="tasks.report")
def report(kind, size, seed):
    global _counter
    work.run(kind, size, seed)
    if _counter is None:
        _counter = redis.Redis.from_url(app.conf.broker_url)
    _counter.incr("bench:done")
