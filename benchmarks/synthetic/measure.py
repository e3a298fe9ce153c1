"""The synthetic benchmark's runs: the benchmark image, the compiles, and one worker dyno per
config, language and round, configs interleaved round-robin."""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import tempfile
from pathlib import Path

from harness import images
from harness.app import App
from harness.docker import remove_container
from harness.images import StackImages
from harness.paths import REPO
from harness.stacks import Stack
from stack_image import run_image_with

from common.cli import Clock, Machine, header, say
from common.configs import LIBRARY, MIB, Config
from common.errors import BenchmarkError

from .builds import build_info, measure_builds
from .configs import LANGUAGES, Parameters, expected_options
from .report import build_lines
from .results import BenchmarkImages, StackResult, WorkerRun
from .stats import summarize

BENCHMARKS = REPO / "benchmarks"
# The benchmark image: the run image plus Ubuntu's python3 and ruby. The stacks' run images lack
# one or both (heroku-24 has neither), and the workers need them; jemalloc is not among them.
BENCHMARK_PACKAGES = ("python3", "ruby")


def benchmark_image(stack_images: StackImages) -> str:
    """The stack's run image plus python3 and ruby from the stack's Ubuntu archive: the workers need them."""
    return run_image_with(stack_images, "benchmark", BENCHMARK_PACKAGES, say)


def workload_command(language: str, parameters: Parameters) -> str:
    args = ["--threads", parameters.threads, "--jobs", parameters.jobs, "--seed", parameters.seed,
            "--idle", parameters.idle]
    return f"{LANGUAGES[language]} {' '.join(shlex.quote(str(arg)) for arg in args)}"


def check_run(run: WorkerRun, config: Config, compiled_conf: str) -> None:
    """That the worker ran on the allocator CONFIG configures, with the settings it configures."""
    label = f"{config.name}/{run.language}"
    expected = LIBRARY if config.jemalloc else None
    if run.jemalloc != expected:
        raise BenchmarkError(f"{label}: expected {expected or 'no libjemalloc'} mapped, "
                             f"the worker had {run.jemalloc} (environment: {run.environment})")
    if config.jemalloc:
        reported = run.jemalloc_options or {}
        wrong = {key: (value, reported.get(key)) for key, value in expected_options(compiled_conf, config).items()
                 if reported.get(key) != value}
        if wrong:
            raise BenchmarkError(f"{label}: jemalloc runs with other settings than configured "
                                 f"(setting: (expected, reported)): {wrong}")
    # jemalloc reports an option it does not understand on stderr, and ignores it.
    if "<jemalloc>" in run.stderr:
        raise BenchmarkError(f"{label}: jemalloc complained:\n{run.stderr[-2000:]}")


def run_dyno(app: App, slug: Path, compiled_conf: str, config: Config, language: str, parameters: Parameters,
             timeout: float, round_number: int) -> WorkerRun:
    """Boot one worker dyno that runs the workload once; its run, checked for the allocator it ran on."""
    command = workload_command(language, parameters)
    dyno = app.boot(slug, command, config.env, process_type="worker")
    try:
        exited = dyno.wait(timeout)
    finally:
        remove_container(dyno.container)
    lines = [line for line in exited.stdout.splitlines() if line.startswith("{")]
    if exited.returncode != 0 or not lines:
        raise BenchmarkError(f"{config.name}/{language}: `{command}` exited {exited.returncode}:\n{exited.output[-3000:]}")
    try:
        run = WorkerRun.from_line(lines[-1], config=config.name, command=command, stderr=exited.stderr,
                                  round=round_number)
    except ValueError as error:
        raise BenchmarkError(f"{config.name}/{language}: {error}:\n{lines[-1][:2000]}") from error
    check_run(run, config, compiled_conf)
    return run


def benchmark_stack(stack: Stack, configs: list[Config], languages: list[str], parameters: Parameters,
                    version: str, dyno_timeout: float, command: str) -> StackResult:
    clock = Clock()
    load_start = os.getloadavg()
    say(f"== {stack.name}: images")
    stack_images = images.ensure(stack)
    run_image = benchmark_image(stack_images)
    say(f"   dynos run in {run_image} ({stack_images.run} + {' '.join(BENCHMARK_PACKAGES)})")
    bench_images = dataclasses.replace(stack_images, run=run_image)

    source_root = Path(tempfile.mkdtemp(prefix="jemalloc-benchmark-source-"))
    source = source_root / "app"
    shutil.copytree(BENCHMARKS / "app", source)
    shutil.copytree(BENCHMARKS / "workloads", source / "workloads")
    # App reads its source from tests/apps/<source>; an absolute path takes the place of that base.
    app = App(bench_images, source=str(source))
    runs: list[WorkerRun] = []
    try:
        say(f"== {stack.name}: compile (jemalloc {version})")
        builds, build_figures = measure_builds(app, version, any(config.stock_build for config in configs))
        for line in build_lines(build_figures):
            say(f"   {line}")
        slugs = {name: app.slug(build) for name, build in builds.items()}
        compiled_confs = {name: build_info(build).get("default_malloc_conf", "") for name, build in builds.items()}

        total = parameters.repetitions * len(configs) * len(languages)
        say(f"== {stack.name}: {total} worker dynos, configs interleaved round-robin")
        for round_number in range(parameters.repetitions):
            # Each round starts one config later, so that no config always runs first.
            shift = round_number % len(configs)
            for config in configs[shift:] + configs[:shift]:
                for language in languages:
                    run = run_dyno(app, slugs[config.build], compiled_confs[config.build], config, language,
                                   parameters, dyno_timeout, round_number)
                    runs.append(run)
                    say(f"   [{len(runs)}/{total}] round {round_number + 1} {config.name:<28} {language:<6} "
                        f"peak {run.peak_rss_bytes / MIB:6.1f} MiB  steady {run.steady_rss_bytes / MIB:6.1f}  "
                        f"after {run.after_work_rss_bytes / MIB:6.1f}  wall {run.wall_seconds:5.2f} s")
    finally:
        app.cleanup()
        shutil.rmtree(source_root, ignore_errors=True)

    return StackResult(
        **header(clock, stack, command, Machine.here(load_start)),
        images=BenchmarkImages(stack_images.run, run_image, stack_images.build, stack_images.upstream),
        parameters=parameters,
        configs=configs,
        build=build_figures,
        summary=summarize(runs, configs, languages),
        runs=runs,
    )
