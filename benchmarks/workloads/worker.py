#!/usr/bin/env python3
"""A threaded job worker whose allocation pattern fragments glibc malloc (Celery-style bloat).

Worker threads take jobs from a queue. Each job builds many objects of widely mixed sizes (small
strings, dicts, medium bytes, buffers above glibc's mmap threshold), keeps a small bounded
fraction in a long-lived cache shared by all threads, and drops the rest. The long-lived
survivors stay scattered among freed memory in every thread's malloc arena, which is what
makes glibc's RSS grow and stay high, and what the allocator under test is judged on.

The stream of jobs is fixed by the seed: job N draws from its own generator, seeded with
(seed, N), whichever thread runs it. A sampler thread reads VmRSS every --sample-ms.

Prints one JSON line on stdout at the end (see the README's "Memory benchmark" section). Stdlib
only, and Python 3.6 or later: it runs on the python3 of every stack image, heroku-18's too.
"""

import argparse
import ctypes
import gc
import json
import os
import platform
import queue
import random
import statistics
import sys
import threading
import time
from typing import List, Optional, Tuple

# Object kinds with their share of the objects a job builds and their size range in bytes.
# pymalloc serves objects of up to 512 bytes from its own mmap'ed arenas, so malloc sees the
# larger strings and dict tables and every bytes object above that: the mix is weighted there.
SMALL_STRING = (0.40, 16, 500)
DICT = (0.15, 4, 40)  # entries, not bytes
MEDIUM_BYTES = (0.35, 513, 8 * 1024)
LARGE_BYTES = (0.09, 8 * 1024, 128 * 1024)
# Above glibc's initial mmap threshold (128 KiB); glibc raises the threshold as such buffers
# are freed, after which they come from the arenas too.
HUGE_BUFFER = (0.01, 128 * 1024, 1024 * 1024)
KINDS = (SMALL_STRING, DICT, MEDIUM_BYTES, LARGE_BYTES, HUGE_BUFFER)


def read_status(field: str) -> int:
    """A size field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def mapped_jemalloc() -> Optional[str]:
    """The libjemalloc file mapped into this process, if any: proof of which allocator runs."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and "libjemalloc" in fields[5]:
                return fields[5].strip()
    return None


def jemalloc_options() -> Optional[dict]:
    """The settings jemalloc runs with, as it reports them (mallctl), or None without jemalloc."""
    try:
        mallctl = ctypes.CDLL(None).mallctl
    except AttributeError:
        return None

    def read(name, value):
        size = ctypes.c_size_t(ctypes.sizeof(value))
        status = mallctl(name.encode(), ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0))
        return value.value if status == 0 else None

    return {
        "narenas": read("opt.narenas", ctypes.c_uint()),
        "background_thread": read("opt.background_thread", ctypes.c_bool()),
        "dirty_decay_ms": read("opt.dirty_decay_ms", ctypes.c_ssize_t()),
    }


class RssSampler(threading.Thread):
    """Samples VmRSS into (seconds since start, bytes) pairs until stopped."""

    def __init__(self, interval: float):
        super().__init__(name="rss-sampler", daemon=True)
        self.interval = interval
        self.started_at = time.monotonic()
        self.samples = []  # type: List[Tuple[float, int]]
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.monotonic() - self.started_at, read_status("VmRSS")))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def between(self, start: float, end: float) -> List[int]:
        return [rss for at, rss in self.samples if start <= at <= end]


def build_object(rng: random.Random, kind: Tuple[float, int, int]):
    _, low, high = kind
    size = rng.randint(low, high)
    # Repetition writes every byte, so the pages are really touched, as a real payload's are.
    letter = chr(97 + size % 26)
    if kind is SMALL_STRING:
        return letter * size
    if kind is DICT:
        return {f"field-{index}": letter * (index + 8) for index in range(size)}
    return letter.encode() * size


def deep_size(value) -> int:
    """Bytes an object of this workload holds, by the interpreter's own accounting."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(sys.getsizeof(key) + sys.getsizeof(item) for key, item in value.items())
    return size


class Worker:
    def __init__(self, seed: int, objects_per_job: int, keep_per_mille: int, cache_slots: int,
                 io_waits: int, io_wait_ms: float):
        self.seed = seed
        self.objects_between_waits = max(1, objects_per_job // max(io_waits, 1))
        self.io_wait = io_wait_ms / 1000 if io_waits > 0 else 0.0
        self.objects_per_job = objects_per_job
        self.keep_per_mille = keep_per_mille
        # The long-lived cache: a fixed number of slots, each job overwriting a few at random,
        # so it stays bounded while its survivors are spread over the whole run.
        self.cache = [None] * cache_slots
        self.weights = [kind[0] for kind in KINDS]
        self.objects_built = 0
        self.bytes_built = 0
        self._count_lock = threading.Lock()

    def run_job(self, job: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + job)
        kinds = rng.choices(KINDS, weights=self.weights, k=self.objects_per_job)
        objects = []
        built_bytes = 0
        for index, kind in enumerate(kinds):
            # The job's I/O (a query, a request): the thread waits and the GIL goes to another one.
            if self.io_wait and index % self.objects_between_waits == 0:
                time.sleep(self.io_wait)
            value = build_object(rng, kind)
            built_bytes += len(value)
            objects.append(value)
            # Huge buffers are request payloads: a cache keeps what is derived from them.
            if kind is not HUGE_BUFFER and rng.randrange(1000) < self.keep_per_mille:
                self.cache[rng.randrange(len(self.cache))] = value
        with self._count_lock:
            self.objects_built += len(objects)
            self.bytes_built += built_bytes
        # The job ends: everything it did not cache is dropped here.

    def serve(self, jobs: queue.Queue) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            self.run_job(job)

    def cache_bytes(self) -> int:
        return sum(deep_size(value) for value in self.cache if value is not None)


def downsample(samples: List[Tuple[float, int]], points: int) -> List[List[float]]:
    step = max(1, len(samples) // points)
    return [[round(at, 3), rss] for at, rss in samples[::step]]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--objects-per-job", type=int, default=400)
    parser.add_argument("--keep-per-mille", type=int, default=20, help="objects per 1000 that go to the cache")
    parser.add_argument("--cache-slots", type=int, default=2000)
    parser.add_argument("--io-waits", type=int, default=2, help="waits for simulated I/O per job")
    parser.add_argument("--io-wait-ms", type=float, default=1.0)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds to idle after the work before the last RSS reading")
    parser.add_argument("--sample-ms", type=float, default=50.0)
    parser.add_argument("--series-points", type=int, default=200, help="at most this many RSS samples in the output")
    args = parser.parse_args(argv)

    sampler = RssSampler(args.sample_ms / 1000)
    sampler.start()
    time.sleep(args.sample_ms / 1000)
    baseline = read_status("VmRSS")

    worker = Worker(args.seed, args.objects_per_job, args.keep_per_mille, args.cache_slots,
                    args.io_waits, args.io_wait_ms)
    jobs = queue.Queue()  # type: queue.Queue
    for job in range(args.jobs):
        jobs.put(job)
    for _ in range(args.threads):
        jobs.put(None)
    threads = [threading.Thread(target=worker.serve, args=(jobs,), name=f"worker-{n}") for n in range(args.threads)]

    work_started = time.monotonic() - sampler.started_at
    wall_started, cpu_started = time.monotonic(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.monotonic() - wall_started, time.process_time() - cpu_started
    work_ended = time.monotonic() - sampler.started_at

    # A full collection, as an idle worker eventually runs one, then the idle period in which
    # an allocator may give memory back.
    gc.collect()
    live_heap = worker.cache_bytes()
    time.sleep(args.idle)
    after_work = read_status("VmRSS")
    peak = read_status("VmHWM")
    sampler.stop()

    working = sampler.between(work_started, work_ended) or [after_work]
    # The kernel updates VmHWM when pages are unmapped, not when an allocator hands them back
    # with madvise (as jemalloc purges), so a sample taken before a purge can exceed it.
    peak = max(peak, *working)
    result = {
        "language": "python",
        "runtime": f"{platform.python_implementation()} {platform.python_version()}",
        "threads": args.threads,
        "jobs": args.jobs,
        "seed": args.seed,
        "objects_per_job": args.objects_per_job,
        "io_waits": args.io_waits,
        "io_wait_ms": args.io_wait_ms,
        "idle_seconds": args.idle,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "steady_rss_bytes": int(statistics.median(working)),
        "after_work_rss_bytes": after_work,
        "live_heap_bytes": live_heap,
        "heap_detail": {"allocated_blocks": sys.getallocatedblocks(), "cache_bytes": live_heap},
        "wall_seconds": round(wall, 4),
        "cpu_seconds": round(cpu, 4),
        "objects_built": worker.objects_built,
        "payload_length_sum": worker.bytes_built,
        "jemalloc": mapped_jemalloc(),
        "jemalloc_options": jemalloc_options(),
        "environment": {name: os.environ.get(name) for name in ("LD_PRELOAD", "MALLOC_ARENA_MAX", "MALLOC_CONF")},
        "samples": len(sampler.samples),
        "series": downsample(sampler.samples, args.series_points),
    }
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
