"""Images, compiles and rounds: the dynos of every app and config, side by side, under load.

A round runs every selected app once per config. The configs of one app run at the same time
(up to the size's concurrency), each as a dyno of the benchmark image with the memory limit of
twice its quota (where Heroku kills a dyno: R15), joined to the loopback network of a container
that runs the app's Redis and the feeder. Every dyno's feeder has the same seed, so each config
gets the same work at the same pace, in the same conditions as the others.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.app import App, Build
from harness.docker import container_name, docker, remove_container, start
from harness.images import StackImages
from harness.paths import REPO

from common.cli import say
from common.compile import fixture_config, timed_compile
from common.errors import BenchmarkError

from .analysis import run_figures
from .apps import APPS, PACKAGES, REDIS_URL, SOURCE, WEB_PORT, RealApp
from .configs import Config
from .results import SoakRun
from .sampler import DynoSampler

LOAD = REPO / "benchmarks" / "load"
LOAD_MOUNT = "/bench"
SAMPLE_SECONDS = 1.0
# jemalloc-check in the slug, run in a dyno at the end of its run.
CHECK = "/app/vendor/jemalloc/bin/jemalloc-check"


class RunError(BenchmarkError):
    pass


def compile_builds(app: App, version: str, builds_needed: set[str]) -> dict[str, Build]:
    """The app compiled with this buildpack: the default build and, if needed, JEMALLOC_TUNING=none."""
    builds = {}
    with fixture_config(app, version) as config:
        for name in sorted(builds_needed):
            builds[name], seconds = timed_compile(app, config, name, f"compile of the app ({name} build)")
            say(f"   {name} build: {seconds:.0f} s")
    return builds


@dataclass
class Slot:
    """One dyno of a round: an app under one config, with its Redis and feeder beside it."""

    app: RealApp
    config: Config
    # Workers to run (None: the Procfile's), for a fit run.
    workers: int | None = None
    services: str = ""
    dyno: str = ""
    sampler: DynoSampler | None = None
    feeder: subprocess.Popen | None = None
    events: dict = field(default_factory=dict)
    feeder_lines: list[str] = field(default_factory=list)
    killed: bool = False


def start_slot(slot: Slot, app: App, slug: Path, image: str, quota_mib: int, workspace: Path) -> None:
    slot.services = container_name("soak-services")
    start(image, "redis-server", "--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
          "--dir", "/tmp", name=slot.services, volumes=[f"{LOAD}:{LOAD_MOUNT}:ro"])
    # The app exits if Redis does not answer when it boots, as it would on Heroku.
    deadline = time.monotonic() + 60
    while docker("exec", slot.services, "redis-cli", "ping", check=False, timeout=30).stdout.strip() != "PONG":
        if time.monotonic() > deadline:
            raise RunError(f"{slot.app.name}/{slot.config.name}: Redis did not answer within 60 s")
        time.sleep(0.2)
    # JEMALLOC_METRICS every second, for the sampler (it reads each process's published figures)
    # and for the lines a user would see; glibc dynos load no jemalloc and so ignore it.
    env = {"REDIS_URL": REDIS_URL, "JEMALLOC_BENCHMARK_CONFIG": slot.config.name, "JEMALLOC_METRICS": "1",
           **(slot.app.scaled(slot.workers) if slot.workers else {}), **slot.config.env}
    if slot.app.web:
        env["PORT"] = str(WEB_PORT)
    limit = f"{2 * quota_mib}m"
    dyno = app.boot(slug, slot.app.command, env, process_type=slot.app.process_type,
                    network=f"container:{slot.services}",
                    docker_options=("--memory", limit, "--memory-swap", limit))
    slot.dyno = dyno.container
    state = docker("inspect", "--format", "{{.State.Running}} {{.State.Pid}}", slot.dyno).stdout.split()
    try:
        if state[0] != "true":
            raise RuntimeError("not running")
        slot.sampler = DynoSampler(int(state[1]))
    except RuntimeError as error:
        logs = docker("logs", slot.dyno, check=False, timeout=30).output
        raise RunError(f"{slot.app.name}/{slot.config.name}: the dyno exited at once ({error}):\n{logs[-3000:]}")


def load_for(app: RealApp, workers: int | None, rates: tuple[float, float]) -> tuple[float, int]:
    """(jobs or requests per second, HTTP connections) for APP running WORKERS workers: the size's
    rate is for the Procfile's workers, and grows with them, so that every worker stays as busy
    (past what the machine can serve, the feeder's bounded queue keeps every worker fed)."""
    scale = (workers or app.workers) / app.workers
    rate = (rates[1] if app.web else rates[0]) * scale
    return round(rate, 3), max(5, math.ceil(5 * scale)) if app.web else 5


def start_feeder(slot: Slot, size, seed: int) -> None:
    rate, connections = load_for(slot.app, slot.workers, size.rates)
    command = ["docker", "exec", slot.services, "python3", f"{LOAD_MOUNT}/feeder.py", slot.app.feeder,
               "--rate", str(rate), "--duration", str(size.load_seconds), "--idle", str(size.idle_seconds),
               "--seed", str(seed), "--port", str(WEB_PORT), "--connections", str(connections), "--load", size.load]
    if slot.app.feeder == "sidekiq" and slot.workers:
        command += ["--processes", str(slot.workers)]
    slot.feeder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def read():
        for line in slot.feeder.stdout:
            slot.feeder_lines.append(line.rstrip())
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                slot.events[event["event"]] = event

    threading.Thread(target=read, daemon=True).start()


def stop_slot(slot: Slot) -> None:
    if slot.feeder and slot.feeder.poll() is None:
        slot.feeder.kill()
    for name in (slot.dyno, slot.services):
        if name:
            remove_container(name)


def run_batch(slots: list[Slot], app: App, slugs: dict[str, Path], image: str, size, seed: int,
              quota_mib: int, round_number: int) -> list[SoakRun]:
    """Boot the slots' dynos, load them all at once, sample them every second; one result per slot."""
    workspace = Path(tempfile.mkdtemp(prefix="jemalloc-soak-"))
    try:
        for slot in slots:
            start_slot(slot, app, slugs[slot.config.build], image, quota_mib, workspace)
        for slot in slots:
            start_feeder(slot, size, seed)
        deadline = time.monotonic() + size.load_seconds + size.idle_seconds + 900
        while any(slot.feeder.poll() is None for slot in slots):
            began = time.monotonic()
            for slot in slots:
                if slot.feeder.poll() is None:
                    slot.sampler.sample()
            for slot in slots:
                if not slot.killed and slot.feeder.poll() is None and not _running(slot.dyno):
                    slot.killed = True
                    slot.feeder.kill()
            if time.monotonic() > deadline:
                raise RunError("the round took far longer than its size allows: " +
                               ", ".join(f"{slot.app.name}/{slot.config.name}" for slot in slots
                                         if slot.feeder.poll() is None))
            time.sleep(max(0.0, SAMPLE_SECONDS - (time.monotonic() - began)))
        results = []
        for slot in slots:
            slot.feeder.wait(timeout=30)
            results.append(_result(slot, size, quota_mib, round_number))
        return results
    finally:
        for slot in slots:
            stop_slot(slot)
        shutil.rmtree(workspace, ignore_errors=True)


def _running(container: str) -> bool:
    result = docker("inspect", "--format", "{{.State.Running}}", container, check=False, timeout=30)
    return result.stdout.strip() == "true"


def _result(slot: Slot, size, quota_mib: int, round_number: int) -> SoakRun:
    label = f"{slot.app.name}/{slot.config.name}"
    if slot.killed:
        oom = docker("inspect", "--format", "{{.State.OOMKilled}}", slot.dyno, check=False).stdout.strip()
        logs = docker("logs", "--tail", "30", slot.dyno, check=False, timeout=30).output
        return SoakRun(slot.app.name, slot.config.name, round_number, oom_killed=oom == "true",
                       log_tail=logs[-2000:], feeder=slot.feeder_lines[-10:])
    missing = [event for event in ("started", "load_ended", "drained", "summary") if event not in slot.events]
    if missing:
        logs = docker("logs", "--tail", "40", slot.dyno, check=False, timeout=30).output
        raise RunError(f"{label}: the feeder did not finish ({', '.join(missing)} missing):\n"
                       + "\n".join(slot.feeder_lines[-10:]) + f"\ndyno log:\n{logs[-3000:]}")
    problems = slot.sampler.allocator_problems(slot.config)
    if problems:
        raise RunError(f"{label}: the allocator is not the configured one:\n" + "\n".join(problems))
    if not slot.sampler.processes:
        raise RunError(f"{label}: no process of the dyno was seen")
    logs = docker("logs", slot.dyno, check=False, timeout=30).output
    if "<jemalloc>" in logs:
        raise RunError(f"{label}: jemalloc complained:\n{logs[-2000:]}")
    figures = run_figures(slot.sampler, slot.events, quota_mib, size.load_seconds)
    if slot.config.slug_jemalloc:
        figures.metrics_lines, figures.check_lines = _what_a_user_sees(slot.dyno, logs)
    return SoakRun(slot.app.name, slot.config.name, round_number, figures,
                   failures=slot.events["summary"].get("failures", 0))


def _what_a_user_sees(dyno: str, logs: str) -> tuple[list[str], list[str]]:
    """The dyno's last sample# line of each process, and jemalloc-check --all's memory lines,
    run in the dyno at the end of its run as `heroku ps:exec` would."""
    last = {}
    for line in logs.splitlines():
        match = re.match(r"jemalloc source=\S+ pid=(\d+) ", line)
        if match:
            last[match[1]] = line
    check = docker("exec", dyno, CHECK, "--all", check=False, timeout=60).stdout
    return list(last.values()), [line for line in check.splitlines() if line.startswith("memory")]


def source_app(stack_images: StackImages) -> tuple[App, Path]:
    """An App over a copy of benchmarks/realapp (App compiles from tests/apps/<source>; an absolute path works)."""
    root = Path(tempfile.mkdtemp(prefix="jemalloc-soak-source-"))
    shutil.copytree(SOURCE, root / "app")
    return App(stack_images, source=str(root / "app")), root


__all__ = ["APPS", "PACKAGES", "RunError", "Slot", "compile_builds", "load_for", "run_batch", "source_app"]
