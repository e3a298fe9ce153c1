"""Steady, seeded load for one real app of the soak benchmark, on loopback only.

Runs beside the dyno, in a container that shares only the dyno's loopback network, with the
Redis server the app uses. It waits for the app to be ready, then for DURATION seconds starts
jobs (Sidekiq or Celery, through Redis) or requests (puma, over HTTP) at a fixed rate, from a
seeded stream, so that every allocator config gets the very same work. The queue is bounded: when
MAX_QUEUE jobs wait, the feeder waits too, so a slow config does less work rather than pile up
memory in Redis. After the load it waits until the app has done every job, then idles for IDLE
seconds. It prints one JSON line per event (started, load_ended, drained) and a summary.

    python3 feeder.py sidekiq --rate 1.5 --duration 300 --idle 60 --seed 1
"""

import argparse
import http.client
import json
import math
import queue
import random
import socket
import sys
import threading
import time

REDIS_PORT = 6379
# (weight, job kind, smallest, largest, how sizes spread). Sizes are bytes, rows for csv.
MIXES = {
    # Background jobs: API payloads, exports of 10-30k rows and, now and then, a big one.
    "worker": [
        (0.40, "json", 1_000, 2_000_000, "log"),
        (0.30, "text", 100_000, 1_000_000, "log"),
        (0.25, "csv", 10_000, 30_000, "uniform"),
        (0.05, "csv", 100_000, 300_000, "uniform"),
    ],
    # Web requests: smaller documents and exports.
    "web": [
        (0.50, "json", 1_000, 500_000, "log"),
        (0.30, "text", 10_000, 500_000, "log"),
        (0.20, "csv", 1_000, 20_000, "uniform"),
    ],
    # --load heavy: the same work with the big exports far more often (one job in five exports
    # 300,000 rows, as a spreadsheet export of a whole table does; one request in ten 100,000).
    "worker-heavy": [
        (0.30, "json", 1_000, 2_000_000, "log"),
        (0.25, "text", 100_000, 1_000_000, "log"),
        (0.25, "csv", 10_000, 30_000, "uniform"),
        (0.20, "csv", 300_000, 300_000, "uniform"),
    ],
    "web-heavy": [
        (0.45, "json", 1_000, 500_000, "log"),
        (0.25, "text", 10_000, 500_000, "log"),
        (0.20, "csv", 1_000, 20_000, "uniform"),
        (0.10, "csv", 100_000, 100_000, "uniform"),
    ],
}


def job_stream(seed, mix):
    """An endless, seeded sequence of (kind, size, job seed)."""
    rng = random.Random(seed)
    weights = [entry[0] for entry in mix]
    while True:
        _, kind, low, high, spread = rng.choices(mix, weights)[0]
        if spread == "log":
            size = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            size = rng.randint(low, high)
        yield kind, size, rng.randrange(2 ** 31)


class Redis:
    """Just enough of the Redis protocol (RESP) for the feeder; no client library needed."""

    def __init__(self, port=REDIS_PORT):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.socket.makefile("rb")

    def call(self, *args):
        parts = [arg if isinstance(arg, bytes) else str(arg).encode() for arg in args]
        request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)
        self.socket.sendall(request)
        return self._reply()

    def _reply(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            return None if length < 0 else self.file.read(length + 2)[:-2]
        if kind == b"*":
            length = int(rest)
            return None if length < 0 else [self._reply() for _ in range(length)]
        raise RuntimeError("redis: unexpected reply %r" % line)

    def count(self, key):
        value = self.call("GET", key)
        return int(value) if value else 0


class RedisTarget:
    """A worker app fed through Redis; the app counts the jobs it has done in bench:done."""

    mix = "worker"

    def __init__(self, options):
        self.redis = Redis()
        self.redis.call("DEL", "bench:done")

    def done(self):
        return self.redis.count("bench:done")


class SidekiqTarget(RedisTarget):
    """Jobs pushed as Sidekiq's client does: a JSON payload on the list queue:default."""

    def __init__(self, options):
        super().__init__(options)
        self.processes = options.processes

    def ready(self):
        # Each running Sidekiq process registers itself in the set "processes" (its heartbeat).
        return self.redis.call("SCARD", "processes") >= self.processes

    def submit(self, job, number):
        kind, size, seed = job
        now = time.time()
        payload = {"class": "ReportJob", "args": [kind, size, seed], "queue": "default", "retry": False,
                   "jid": "%024x" % number, "created_at": now, "enqueued_at": now}
        self.redis.call("SADD", "queues", "default")
        self.redis.call("LPUSH", "queue:default", json.dumps(payload))

    def waiting(self):
        return self.redis.call("LLEN", "queue:default")


class CeleryTarget(RedisTarget):
    """Tasks sent with Celery's own client to the Redis broker."""

    def __init__(self, options):
        from celery import Celery

        super().__init__(options)
        self.app = Celery("feeder", broker="redis://127.0.0.1:%d/0" % REDIS_PORT)

    def ready(self):
        # A worker declares its queue on start; the Redis transport records that binding.
        return self.redis.call("EXISTS", "_kombu.binding.celery") == 1

    def submit(self, job, number):
        self.app.send_task("tasks.report", args=list(job))

    def waiting(self):
        return self.redis.call("LLEN", "celery")


class HttpTarget:
    """Requests to the web dyno's port from a few client threads, as a router's connections."""

    mix = "web"

    def __init__(self, options):
        self.port = options.port
        self.pending = queue.Queue()
        self.lock = threading.Lock()
        self.completed = 0
        self.in_flight = 0
        self.failures = []
        self.bytes = 0
        for _ in range(options.connections):
            threading.Thread(target=self._client, daemon=True).start()

    def ready(self):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def submit(self, job, number):
        with self.lock:
            self.in_flight += 1
        self.pending.put(job)

    def _client(self):
        connection = None
        while True:
            kind, size, seed = self.pending.get()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
                connection.request("GET", "/work?kind=%s&size=%d&seed=%d" % (kind, size, seed))
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError("HTTP %d" % response.status)
                with self.lock:
                    self.completed += 1
                    self.bytes += len(body)
            except (OSError, RuntimeError, http.client.HTTPException) as error:
                connection = None
                with self.lock:
                    self.failures.append("%s %d: %s" % (kind, size, error))
            finally:
                with self.lock:
                    self.in_flight -= 1

    def waiting(self):
        with self.lock:
            return self.in_flight

    def done(self):
        with self.lock:
            return self.completed + len(self.failures)


TARGETS = {"sidekiq": SidekiqTarget, "celery": CeleryTarget, "http": HttpTarget}


def emit(event, **fields):
    print(json.dumps(dict(event=event, time=time.time(), **fields)), flush=True)


def wait_until(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.2)
    emit("failed", reason="%s within %d s" % (what, timeout))
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("--rate", type=float, required=True, help="jobs or requests started per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds of load")
    parser.add_argument("--idle", type=float, default=60, help="seconds of idling after the last job is done")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-queue", type=int, default=20, help="jobs waiting at most before the feeder waits")
    parser.add_argument("--port", type=int, default=5000, help="the web dyno's PORT (http)")
    parser.add_argument("--connections", type=int, default=5, help="client connections (http)")
    parser.add_argument("--load", choices=("normal", "heavy"), default="normal",
                        help="the job mix: normal, or heavy (the big exports far more often)")
    parser.add_argument("--processes", type=int, default=1,
                        help="server processes that must be up before the load starts (sidekiq)")
    parser.add_argument("--ready-timeout", type=float, default=180)
    parser.add_argument("--drain-timeout", type=float, default=600)
    options = parser.parse_args()

    wait_until(lambda: Redis().call("PING") == "PONG", 60, "Redis did not answer")
    target = TARGETS[options.target](options)
    wait_until(target.ready, options.ready_timeout, "the app was not ready")

    started = time.time()
    emit("started")
    end = started + options.duration
    sent = stalled_seconds = 0
    mix = target.mix if options.load == "normal" else f"{target.mix}-{options.load}"
    for number, job in enumerate(job_stream(options.seed, MIXES[mix])):
        due = started + sent / options.rate
        if due >= end:
            break
        if due > time.time():
            time.sleep(due - time.time())
        stall_started = time.time()
        while target.waiting() >= options.max_queue and time.time() < end:
            time.sleep(0.05)
        stalled_seconds += time.time() - stall_started
        if time.time() >= end:
            break
        target.submit(job, number)
        sent += 1
    emit("load_ended", sent=sent)
    wait_until(lambda: target.done() >= sent, options.drain_timeout, "the app did not finish its jobs")
    emit("drained", done=target.done())
    time.sleep(options.idle)
    summary = {"sent": sent, "done": target.done(), "stalled_seconds": round(stalled_seconds, 1)}
    if isinstance(target, HttpTarget):
        summary.update(failures=len(target.failures), failure_examples=target.failures[:5],
                       response_bytes=target.bytes)
    emit("summary", **summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
