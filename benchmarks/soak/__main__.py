"""Command line of the soak benchmark (benchmarks/run).

    benchmarks/run                                  # heroku-24, every app, the main configs, 2 rounds
    benchmarks/run --stack heroku-22 --size readme
    benchmarks/run --apps sidekiq --configs glibc,jemalloc,jemalloc+narenas:1
    benchmarks/run --fit --stack heroku-26          # the default's workers per dyno against the peers
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

from harness import images
from harness.stacks import Stack
from stack_image import run_image_with

from common import cli
from common.cli import Clock, Machine, say
from common.configs import is_malloc_conf, names
from common.errors import BenchmarkError

from . import report
from .analysis import summarize
from .apps import APPS, packages_for
from .configs import (BASELINE, CONFIGS, DEFAULT_VERSION, DYNO_SIZES, FIT_WORKERS, SIZES, Config, Size,
                      candidate)
from .forkexec import after_fork_cost, fork_exec_cost
from .results import ForkExecCost, SoakParameters, SoakResult
from .runner import Slot, compile_builds, run_batch, source_app


def configs_of(stack: Stack, app: str, configs: list[Config]) -> list[Config]:
    """The configs that mean something for APP on STACK; says which are left out and why."""
    kept = []
    for config in configs:
        if config.applies_to(stack.name, APPS[app].language):
            kept.append(config)
        else:
            say(f"   {app} on {stack.name}: {config.name} left out: {config.limited_because}")
    return kept


def measure_fork_costs(stack: Stack, app, slug, size: Size) -> ForkExecCost:
    say(f"== {stack.name}: fork+exec cost of the background thread restart")
    fork_exec = fork_exec_cost(app, slug, size.fork_exec_rounds)
    for line in fork_exec.lines():
        say(f"   {line}")
    say(f"== {stack.name}: fork without exec: a child's work right after its fork, with and without the restart")
    fork_exec.after_fork = after_fork_cost(app, slug, size.fork_exec_rounds)
    for line in fork_exec.after_fork_lines():
        say(f"   {line}")
    return fork_exec


def benchmark_stack(stack: Stack, apps: list[str], configs: list[Config], size: Size,
                    options: argparse.Namespace, command: str) -> SoakResult | None:
    """The soak benchmark of STACK (None with --fork-exec-only, which only prints its figures)."""
    clock = Clock()
    configs = [config for config in configs if any(config.applies_to(stack.name, APPS[app].language) for app in apps)]
    say(f"== {stack.name}: images")
    stack_images = images.ensure(stack)
    image = run_image_with(stack_images, "soak", packages_for(stack.name), say)
    bench_images = dataclasses.replace(stack_images, run=image)
    app, source_root = source_app(bench_images)
    runs = []
    try:
        say(f"== {stack.name}: compile the real apps with the buildpack (jemalloc {options.version})")
        needed = {"default"} if options.fork_exec_only else {config.build for config in configs} | {"default"}
        builds = compile_builds(app, options.version, needed)
        slugs = {name: app.slug(build) for name, build in builds.items()}
        # A fit run measures memory only: what the fork helper costs is the normal run's.
        fork_exec = None if options.fit else measure_fork_costs(stack, app, slugs["default"], size)
        if options.fork_exec_only:
            return None
        batches = [[Slot(APPS[name], config, options.workers.get(name)) for config in configs_of(stack, name, configs)]
                   for name in apps]
        per_batch = max(options.concurrency or size.concurrency, 1)
        if size.apps_share_batches:
            batches = [[slot for batch in batches for slot in batch]]
        # Each app's configs side by side, up to the concurrency, so that they share the machine's conditions.
        chunks = [batch[first:first + per_batch] for batch in batches for first in range(0, len(batch), per_batch)]
        try:
            run_rounds(stack, chunks, app, slugs, image, size, options, runs)
        except BenchmarkError as error:
            if not runs:
                raise
            # An hour of figures is not lost to a failure in the last batch.
            finished = [name for name in apps if any(run.app == name for run in runs)]
            partial = result_of(stack, clock, command, options, size, image, finished, configs, fork_exec, runs)
            path, _ = write_result(partial, options, suffix="-partial")
            raise BenchmarkError(f"{error}\n   the {len(runs)} runs that finished before it: {path}") from error
    finally:
        app.cleanup()
        shutil.rmtree(source_root, ignore_errors=True)
    return result_of(stack, clock, command, options, size, image, apps, configs, fork_exec, runs)


def run_rounds(stack: Stack, chunks: list[list[Slot]], app, slugs: dict, image: str, size: Size,
               options: argparse.Namespace, runs: list) -> None:
    """Runs the batches of every round, adding each finished run to RUNS as its batch ends."""
    for round_number in range(size.repetitions):
        for chunk in chunks:
            batch = [Slot(slot.app, slot.config, slot.workers) for slot in chunk]
            labels = ", ".join(f"{slot.app.name}/{slot.config.name}" for slot in batch)
            if options.workers:
                labels += " with " + ", ".join(sorted({f"{slot.app.name} {slot.workers} workers" for slot in batch}))
            say(f"== {stack.name}: round {round_number + 1}/{size.repetitions}: {labels} "
                f"({size.load_seconds / 60:g} min load + {size.idle_seconds} s idle)")
            for run in run_batch(batch, app, slugs, image, size, options.seed, options.quota, round_number):
                runs.append(run)
                if run.killed:
                    say(f"   {run.app:<15} {run.config:<28} KILLED "
                        f"({'out of memory at twice the quota: R15' if run.oom_killed else 'exited'})")
                    continue
                figures = run.figures
                say(f"   {run.app:<15} {run.config:<28} steady {figures.steady_pss / 2**20:6.0f} MiB"
                    f"  peak {figures.peak_pss / 2**20:6.0f}  after idle {figures.after_idle_pss / 2**20:6.0f}"
                    f"  slope {figures.slope_mib_per_min or 0:+6.2f} MiB/min  R14 {figures.r14_seconds:5.0f} s"
                    f"  workers/dyno {figures.workers_fit}  jobs {figures.jobs_done}")


def result_of(stack: Stack, clock: Clock, command: str, options: argparse.Namespace, size: Size, image: str,
              apps: list[str], configs: list[Config], fork_exec: ForkExecCost | None, runs: list) -> SoakResult:
    """The stack's result: RUNS of APPS."""
    return SoakResult(
        **cli.header(clock, stack, command, Machine.here()),
        jemalloc_version=options.version,
        image=image,
        parameters=SoakParameters(size.load_seconds, size.idle_seconds, size.repetitions, size.rates, options.seed,
                                  options.quota, options.size, {name: options.workers[name] for name in apps
                                                                if name in options.workers}, size.load),
        apps={name: APPS[name].about for name in apps},
        configs=configs,
        fork_exec=fork_exec,
        summary=summarize(runs, apps, [config.name for config in configs], BASELINE),
        runs=runs,
    )


def write_result(result: SoakResult, options: argparse.Namespace, suffix: str = "") -> tuple[Path, bool]:
    """The result's JSON file, its Markdown and chart beside it; the JSON file's path, and whether
    there was a chart to draw."""
    base = options.output_dir / f"{result.timestamp}-{result.stack}-soak{suffix}"
    json_path = base.with_suffix(".json")
    cli.write_json(json_path, result.to_json())
    charted = report.chart(result, base.with_suffix(".png"))
    base.with_suffix(".md").write_text(report.markdown(result, base.with_suffix(".png").name if charted else None))
    return json_path, charted


def publish(result: SoakResult | None, options: argparse.Namespace) -> None:
    """The result's JSON file, Markdown and chart, and its tables on the terminal."""
    if result is None:
        return
    json_path, charted = write_result(result, options)
    say(f"\n== {result.stack}: {result.total_seconds / 60:.0f} min in all")
    for line in result.fork_exec.headed_lines() if result.fork_exec else []:
        say(f"   {line}")
    say("")
    say(report.tables(result, report.text_table))
    say(f"\n   results: {json_path} (and .md{', .png' if charted else ''})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(
        "benchmarks/run",
        "Real worker apps (Sidekiq, puma cluster, Celery prefork and threads) in dyno-sized containers "
        "under steady load, per allocator config.",
        "configs:\n" + "\n".join(f"  {config.name:<40} {config.about}" for config in CONFIGS.values())
               + "\n  jemalloc+CONF                            --malloc-conf CONF: MALLOC_CONF=CONF on the default build"
               + "\n\napps:\n" + "\n".join(f"  {app.name:<16} {app.about}" for app in APPS.values())
               + "\n\nsizes:\n" + "\n".join(
                   f"  {name:<8} {size.load_seconds / 60:g} min load + {size.idle_seconds} s idle, {size.repetitions} "
                   f"round(s), {size.concurrency} dynos at once, configs {','.join(size.configs)}"
                   for name, size in SIZES.items()),
    )
    cli.add_stack_option(parser)
    parser.add_argument("--size", choices=SIZES, help="the run's size (default: default; with --fit, fit)")
    parser.add_argument("--fit", action="store_true",
                        help="the fit run: each app with the workers the buildpack's default fits in the dyno "
                             "(--workers), every config a user would pick instead side by side, under a load that "
                             "keeps every worker busy; reports the seconds each spent over its quota")
    parser.add_argument("--workers", metavar="APP=N,...",
                        help="workers per app (puma workers, Celery prefork children, Sidekiq or Celery threads "
                             "processes side by side); with --fit, the apps left out get "
                             + ", ".join(f"{app}={workers}" for app, workers in FIT_WORKERS.items()))
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated apps (default: all)")
    parser.add_argument("--configs", help="comma-separated configs (default: the size's)")
    cli.add_malloc_conf_option(parser, "one more config, jemalloc+CONF: MALLOC_CONF=CONF on the default build "
                                       "(repeatable)")
    parser.add_argument("--minutes", type=float, help="minutes of load (overrides the size)")
    parser.add_argument("--repetitions", type=int, help="rounds (overrides the size)")
    parser.add_argument("--concurrency", type=int, help="dynos at once (overrides the size)")
    parser.add_argument("--load", choices=("normal", "heavy"), default="normal",
                        help="the job mix: normal, or heavy (one job in five a 300,000-row export, one request in "
                             "ten a 100,000-row one)")
    parser.add_argument("--dyno", choices=DYNO_SIZES, default="standard-1x", help="dyno size: its memory quota")
    cli.add_seed_option(parser)
    cli.add_output_options(parser)
    parser.add_argument("--fork-exec-rounds", type=int,
                        help="alternations of the fork+exec and fork-without-exec measurements "
                             "(overrides the size's)")
    parser.add_argument("--fork-exec-only", action="store_true",
                        help="measure only what the background thread restart costs fork+exec and a child's "
                             "work right after fork (C, Ruby, Python), then stop")
    parser.set_defaults(version=DEFAULT_VERSION)
    options = parser.parse_args(argv)
    options.quota = DYNO_SIZES[options.dyno]
    options.size = options.size or ("fit" if options.fit else "default")
    return options


def parse_workers(text: str | None, fit: bool) -> dict[str, int] | None:
    """--workers APP=N,... as {app: N}, on top of FIT_WORKERS with --fit; None when it does not parse."""
    workers = dict(FIT_WORKERS) if fit else {}
    for item in names(text or ""):
        app, _, count = item.partition("=")
        if app not in APPS or not count.isdigit() or int(count) < 1:
            say(f"--workers takes APP=N,... with N from 1 and APP one of {', '.join(APPS)}; {item!r} is not that")
            return None
        workers[app] = int(count)
    return workers


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    size = SIZES[options.size]
    size = dataclasses.replace(
        size,
        load_seconds=int(options.minutes * 60) if options.minutes else size.load_seconds,
        repetitions=options.repetitions or size.repetitions,
        fork_exec_rounds=options.fork_exec_rounds or size.fork_exec_rounds,
        load=options.load,
    )
    stacks = cli.stacks_of(options.stack)
    if stacks is None:
        return 2
    apps = names(options.apps)
    if not apps or any(name not in APPS for name in apps):
        say(f"--apps takes a comma-separated list of: {', '.join(APPS)}")
        return 2
    if options.fit and options.fork_exec_only:
        say("--fit measures memory only and --fork-exec-only the fork helper's cost only: give one of them")
        return 2
    workers = parse_workers(options.workers, options.fit)
    if workers is None:
        return 2
    options.workers = workers
    config_names = names(options.configs or ",".join(size.configs))
    configs = []
    for name in config_names:
        if name not in CONFIGS:
            say(f"unknown config {name!r}; known: {', '.join(CONFIGS)} (or give --malloc-conf CONF)")
            return 2
        configs.append(CONFIGS[name])
    for conf in options.malloc_conf:
        if not is_malloc_conf(conf):
            say(f"--malloc-conf {conf!r} is not KEY:VALUE[,KEY:VALUE...]")
            return 2
        configs.append(candidate(conf))
    if BASELINE not in config_names:
        configs.insert(0, CONFIGS[BASELINE])
    command = cli.command_line("benchmarks/run", argv)
    options.output_dir.mkdir(parents=True, exist_ok=True)
    return cli.run_stacks(
        stacks,
        lambda stack: benchmark_stack(stack, apps, configs, size, options, command),
        lambda stack, result: publish(result, options),
    )


if __name__ == "__main__":
    sys.exit(main())
