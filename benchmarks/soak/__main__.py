"""Command line of the soak benchmark (benchmarks/run).

    sudo benchmarks/run                                  # heroku-24, every app, the main configs, 2 rounds
    sudo benchmarks/run --stack heroku-22 --size readme
    sudo benchmarks/run --apps sidekiq --configs glibc,jemalloc,jemalloc+narenas:1
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from harness import images
from harness.demo import FIXTURES
from harness.docker import DockerError
from harness.paths import REPO
from harness.stacks import selected_stacks
from stack_image import ImageError, run_image_with

from . import report
from .analysis import summarize
from .apps import APPS, PACKAGES
from .configs import BASELINE, CONFIGS, DYNO_SIZES, SIZES, candidate
from .runner import RunError, Slot, compile_builds, run_batch, say, source_app

DEFAULT_OUTPUT = REPO / "benchmark-results"
# Each measurement is a fresh bash, which reads JEMALLOC_BACKGROUND_THREAD_AFTER_FORK when
# jemalloc starts in it; the two kinds alternate so that the machine's noise hits both. Each
# prints its wall time (microseconds) and `times` (CPU time of the shell and its commands).
FORK_EXEC_SCRIPT = r"""
loop() {
  s=$(date +%s%N); for i in $(seq 500); do /bin/true; done; e=$(date +%s%N)
  times >"/tmp/times.$$"
  echo "$(( (e - s) / 1000 )) $(tr '\n' ' ' <"/tmp/times.$$")"
}
export -f loop
for round in $(seq "$1"); do
  echo "restart $(bash -c loop)"
  echo "no-restart $(JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false bash -c loop)"
done
"""


def _seconds(text: str) -> float:
    minutes, _, seconds = text.rstrip("s").partition("m")
    return int(minutes) * 60 + float(seconds)


def fork_exec_cost(app, slug, rounds: int) -> tuple[dict, list[str]]:
    """A bash loop of 500 external commands on the default build, with the background thread
    restarted in forked children (the default) and without (JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false)."""
    script = f"set -- {rounds}\n{FORK_EXEC_SCRIPT}"
    result = app.run(slug, script, {"JEMALLOC_ENABLED": "true"}, process_type="run", timeout=900)
    if result.returncode != 0:
        raise RunError(f"the fork+exec measurement failed:\n{result.output[-2000:]}")
    wall: dict[str, list[float]] = {"restart": [], "no-restart": []}
    cpu: dict[str, list[float]] = {"restart": [], "no-restart": []}
    for line in result.stdout.splitlines():
        fields = line.split()
        # name, wall microseconds, then `times`: shell user, shell sys, children user, children sys.
        if len(fields) == 6 and fields[0] in wall:
            wall[fields[0]].append(int(fields[1]) / 1e6)
            cpu[fields[0]].append(sum(_seconds(field) for field in fields[2:]))
    if not all(wall.values()):
        raise RunError(f"the fork+exec measurement printed no times:\n{result.output[-2000:]}")

    def median(values):
        return sorted(values)[len(values) // 2]

    figures = {kind: {name: median(values) for name, values in times.items()}
               for kind, times in (("wall_seconds", wall), ("cpu_seconds", cpu))}
    for kind in figures:
        figures[kind]["ratio"] = figures[kind]["restart"] / figures[kind]["no-restart"]
    lines = [f"500 external commands from bash, median of {len(wall['restart'])}: "
             f"{figures['wall_seconds']['restart']:.2f} s wall and {figures['cpu_seconds']['restart']:.2f} s CPU with "
             f"the background thread restarted after fork, {figures['wall_seconds']['no-restart']:.2f} s and "
             f"{figures['cpu_seconds']['no-restart']:.2f} s with JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false: "
             f"ratio {figures['wall_seconds']['ratio']:.3f} wall, {figures['cpu_seconds']['ratio']:.3f} CPU"]
    return {"figures": figures, "wall_seconds": wall, "cpu_seconds": cpu}, lines


def benchmark_stack(stack, apps, configs, size, options, command) -> dict:
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()
    say(f"== {stack.name}: images")
    stack_images = images.ensure(stack)
    image = run_image_with(stack_images, "soak", PACKAGES, say)
    bench_images = dataclasses.replace(stack_images, run=image)
    app, source_root = source_app(bench_images)
    runs = []
    try:
        say(f"== {stack.name}: compile the real apps with the buildpack (jemalloc {options.version})")
        needed = {"default"} if options.fork_exec_only else {config.build for config in configs} | {"default"}
        builds = compile_builds(app, options.version, needed)
        slugs = {name: app.slug(build) for name, build in builds.items()}
        say(f"== {stack.name}: fork+exec cost of the background thread restart")
        fork_exec, fork_exec_lines = fork_exec_cost(app, slugs["default"], size.fork_exec_rounds)
        for line in fork_exec_lines:
            say(f"   {line}")
        if options.fork_exec_only:
            return {"stack": stack.name, "fork_exec": fork_exec, "fork_exec_lines": fork_exec_lines}
        batches = [[Slot(APPS[name], config) for config in configs] for name in apps]
        # Slots of several apps share a batch when the concurrency allows (the smoke size).
        flat = [slot for batch in batches for slot in batch]
        per_batch = max(options.concurrency or size.concurrency, 1)
        for round_number in range(size.repetitions):
            for first in range(0, len(flat), per_batch):
                batch = [Slot(slot.app, slot.config) for slot in flat[first:first + per_batch]]
                names = ", ".join(f"{slot.app.name}/{slot.config.name}" for slot in batch)
                say(f"== {stack.name}: round {round_number + 1}/{size.repetitions}: {names} "
                    f"({size.load_seconds / 60:g} min load + {size.idle_seconds} s idle)")
                results = run_batch(batch, app, slugs, image, size, options.seed, options.quota, round_number)
                for result in results:
                    runs.append(result)
                    if result.get("killed"):
                        say(f"   {result['app']:<15} {result['config']:<28} KILLED "
                            f"({'out of memory at twice the quota: R15' if result['oom_killed'] else 'exited'})")
                        continue
                    say(f"   {result['app']:<15} {result['config']:<28} steady {result['steady_pss'] / 2**20:6.0f} MiB"
                        f"  peak {result['peak_pss'] / 2**20:6.0f}  after idle {result['after_idle_pss'] / 2**20:6.0f}"
                        f"  slope {result['slope_mib_per_min'] or 0:+6.2f} MiB/min  R14 {result['r14_seconds']:5.0f} s"
                        f"  workers/dyno {result['workers_fit']}  jobs {result['jobs_done']}")
    finally:
        app.cleanup()
        shutil.rmtree(source_root, ignore_errors=True)
    config_names = [config.name for config in configs]
    return {
        "benchmark": "soak",
        "stack": stack.name,
        "command": command,
        "started": started_at.isoformat(timespec="seconds"),
        "timestamp": started_at.strftime("%Y%m%dT%H%M%SZ"),
        "total_seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "jemalloc_version": options.version,
        "image": image,
        "parameters": {"load_seconds": size.load_seconds, "idle_seconds": size.idle_seconds,
                       "repetitions": size.repetitions, "rates": list(size.rates), "seed": options.seed,
                       "quota_mib": options.quota, "size": options.size},
        "apps": {name: APPS[name].about for name in apps},
        "configs": {config.name: {"env": config.env, "about": config.about, "build": config.build}
                    for config in configs},
        "fork_exec": fork_exec,
        "fork_exec_lines": fork_exec_lines,
        "summary": summarize(runs, apps, config_names, BASELINE),
        "runs": runs,
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="benchmarks/run",
        description="Real worker apps (Sidekiq, puma cluster, Celery prefork and threads) in dyno-sized containers "
                    "under steady load, per allocator config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="configs:\n" + "\n".join(f"  {config.name:<40} {config.about}" for config in CONFIGS.values())
               + "\n  jemalloc+CONF                            --malloc-conf CONF: MALLOC_CONF=CONF on the default build"
               + "\n\napps:\n" + "\n".join(f"  {app.name:<16} {app.about}" for app in APPS.values())
               + "\n\nsizes:\n" + "\n".join(
                   f"  {name:<8} {size.load_seconds / 60:g} min load + {size.idle_seconds} s idle, {size.repetitions} "
                   f"round(s), {size.concurrency} dynos at once, configs {','.join(size.configs)}"
                   for name, size in SIZES.items()),
    )
    parser.add_argument("--stack", default="heroku-24", help="comma-separated stacks (default: heroku-24)")
    parser.add_argument("--size", choices=SIZES, default="default")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated apps (default: all)")
    parser.add_argument("--configs", help="comma-separated configs (default: the size's)")
    parser.add_argument("--malloc-conf", action="append", default=[], metavar="CONF",
                        help="one more config, jemalloc+CONF: MALLOC_CONF=CONF on the default build (repeatable)")
    parser.add_argument("--minutes", type=float, help="minutes of load (overrides the size)")
    parser.add_argument("--repetitions", type=int, help="rounds (overrides the size)")
    parser.add_argument("--concurrency", type=int, help="dynos at once (overrides the size)")
    parser.add_argument("--dyno", choices=DYNO_SIZES, default="standard-1x", help="dyno size: its memory quota")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--version", default="5.3.0", choices=sorted(FIXTURES),
                        help="JEMALLOC_VERSION, built from the offline fixtures (default 5.3.0)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--fork-exec-rounds", type=int,
                        help="alternations of the fork+exec measurement (overrides the size's)")
    parser.add_argument("--fork-exec-only", action="store_true",
                        help="measure only what the background thread restart costs fork+exec, then stop")
    options = parser.parse_args(argv)
    options.quota = DYNO_SIZES[options.dyno]
    return options


def main(argv=None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    size = SIZES[options.size]
    size = dataclasses.replace(
        size,
        load_seconds=int(options.minutes * 60) if options.minutes else size.load_seconds,
        repetitions=options.repetitions or size.repetitions,
        fork_exec_rounds=options.fork_exec_rounds or size.fork_exec_rounds,
    )
    try:
        stacks = selected_stacks(options.stack)
    except ValueError as error:
        say(str(error))
        return 2
    apps = [name.strip() for name in options.apps.split(",") if name.strip()]
    if not apps or any(name not in APPS for name in apps):
        say(f"--apps takes a comma-separated list of: {', '.join(APPS)}")
        return 2
    names = [name.strip() for name in (options.configs or ",".join(size.configs)).split(",") if name.strip()]
    configs = []
    for name in names:
        if name not in CONFIGS:
            say(f"unknown config {name!r}; known: {', '.join(CONFIGS)} (or give --malloc-conf CONF)")
            return 2
        configs.append(CONFIGS[name])
    for conf in options.malloc_conf:
        if not re.fullmatch(r"[a-z_]+:[^,\s]+(,[a-z_]+:[^,\s]+)*", conf):
            say(f"--malloc-conf {conf!r} is not KEY:VALUE[,KEY:VALUE...]")
            return 2
        configs.append(candidate(conf))
    if BASELINE not in names:
        configs.insert(0, CONFIGS[BASELINE])
    command = "benchmarks/run" + "".join(f" {shlex.quote(arg)}" for arg in (sys.argv[1:] if argv is None else argv))
    options.output_dir.mkdir(parents=True, exist_ok=True)
    for stack in stacks:
        try:
            result = benchmark_stack(stack, apps, configs, size, options, command)
        except (RunError, DockerError, ImageError, images.ImageBuildError) as error:
            say(f"\nFAILED on {stack.name}: {error}")
            return 1
        if options.fork_exec_only:
            continue
        base = options.output_dir / f"{result['timestamp']}-{stack.name}-soak"
        json_path = base.with_suffix(".json")
        json_path.write_text(json.dumps(result, indent=1) + "\n")
        charted = report.chart(result, base.with_suffix(".png"))
        base.with_suffix(".md").write_text(report.markdown(result, base.with_suffix(".png").name if charted else None))
        say(f"\n== {stack.name}: {result['total_seconds'] / 60:.0f} min in all")
        for line in result["fork_exec_lines"]:
            say(f"   fork+exec: {line}")
        say("")
        say(report.tables(result, report.text_table))
        say(f"\n   results: {json_path} (and .md{', .png' if charted else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
