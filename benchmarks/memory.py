"""Memory benchmark: what preloading jemalloc buys a threaded job worker, through the real shim.

For each stack it compiles benchmarks/app (with the workloads of benchmarks/workloads) with this
buildpack, exactly as the tests do, then boots one worker dyno per measurement in the stack's run
image, with the config vars of each allocator config, and collects the JSON line the workload
prints. Configs are interleaved round-robin so that the machine's noise spreads over all of
them, and each figure is reported as the median of the repetitions with its spread, and as a
ratio to glibc malloc measured in the same rounds.

    sudo benchmarks/run-synthetic                                  # heroku-24, default size (a few minutes)
    sudo benchmarks/run-synthetic --stack heroku-22,heroku-24 --size long
    sudo benchmarks/run-synthetic --configs glibc,jemalloc --malloc-conf 'narenas:1,tcache:false'

Run through benchmarks/run-synthetic (or with PYTHONPATH=tests and the venv's python): it imports the
test harness. Results go to benchmark-results/ (a JSON file and a Markdown summary per stack).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from harness import images
from harness.app import App, Build
from harness.demo import FIXTURES
from harness.docker import DockerError, remove_container
from harness.images import StackImages, buildpack_image
from harness.paths import REPO
from harness.sources import SourceServer
from harness.stacks import Stack, selected_stacks
from stack_image import ImageError, run_image_with

BENCHMARKS = REPO / "benchmarks"
DEFAULT_OUTPUT = REPO / "benchmark-results"
LIBRARY = "/app/vendor/jemalloc/lib/libjemalloc.so.2"
MIB = 1024 * 1024
DYNO_MEMORY = 512 * MIB


@dataclasses.dataclass(frozen=True)
class Config:
    """An allocator setup, as the config vars a user would set on the app."""

    name: str
    env: dict
    jemalloc: bool
    about: str
    # The dyno runs the app built with JEMALLOC_TUNING=none (jemalloc's stock settings) instead
    # of the buildpack's default build, whose compiled-in defaults a MALLOC_CONF would only
    # amend key by key: a candidate MALLOC_CONF must be the whole configuration.
    stock_build: bool = False


def candidate(name: str, malloc_conf: str) -> Config:
    return Config(name, {"JEMALLOC_ENABLED": "true", "MALLOC_CONF": malloc_conf}, True,
                  f"JEMALLOC_ENABLED=true, MALLOC_CONF={malloc_conf}, on the JEMALLOC_TUNING=none build", True)


CONFIGS = {
    config.name: config
    for config in (
        Config("glibc", {}, False, "glibc malloc, defaults (JEMALLOC_ENABLED and MALLOC_ARENA_MAX unset)"),
        Config("arena2", {"MALLOC_ARENA_MAX": "2"}, False, "glibc malloc, MALLOC_ARENA_MAX=2"),
        Config("jemalloc", {"JEMALLOC_ENABLED": "true"}, True,
               "JEMALLOC_ENABLED=true: the buildpack's default build, with its compiled-in defaults if any"),
        Config("jemalloc-stock", {"JEMALLOC_ENABLED": "true"}, True,
               "JEMALLOC_ENABLED=true, built with JEMALLOC_TUNING=none: jemalloc's stock settings", True),
        candidate("jemalloc:narenas2+bg+decay1s", "narenas:2,background_thread:true,dirty_decay_ms:1000"),
        candidate("jemalloc:bg+decay1s", "background_thread:true,dirty_decay_ms:1000"),
        candidate("jemalloc:narenas2", "narenas:2"),
    )
}
BASELINE = "glibc"

# Presets of --size; the options --threads, --jobs, --repetitions and --idle override them.
SIZES = {
    "smoke": {"threads": 2, "jobs": 20, "repetitions": 1, "idle": 1.0},
    "default": {"threads": 10, "jobs": 1000, "repetitions": 3, "idle": 3.0},
    "long": {"threads": 10, "jobs": 5000, "repetitions": 5, "idle": 12.0},
}
LANGUAGES = {
    "python": "python3 workloads/worker.py",
    "ruby": "ruby workloads/worker.rb",
}
# (field in a workload's JSON line, heading, unit divisor, decimals)
METRICS = [
    ("peak_rss_bytes", "peak RSS MiB", MIB, 1),
    ("steady_rss_bytes", "steady RSS MiB", MIB, 1),
    ("after_work_rss_bytes", "after-work RSS MiB", MIB, 1),
    ("live_heap_bytes", "live heap MiB", MIB, 1),
    ("baseline_rss_bytes", "baseline MiB", MIB, 1),
    ("wall_seconds", "wall s", 1, 2),
    ("cpu_seconds", "CPU s", 1, 2),
]
RATIO_METRICS = ["peak_rss_bytes", "steady_rss_bytes", "after_work_rss_bytes", "wall_seconds", "cpu_seconds"]

# The benchmark image: the run image plus Ubuntu's python3 and ruby. The stacks' run images lack
# one or both (heroku-24 has neither), and the workers need them; jemalloc is not among them.
BENCHMARK_PACKAGES = ("python3", "ruby")


class BenchmarkError(RuntimeError):
    pass


def say(message: str = "") -> None:
    print(message, flush=True)


def benchmark_image(stack_images: StackImages) -> str:
    """The stack's run image plus python3 and ruby from the stack's Ubuntu archive: the workers need them."""
    return run_image_with(stack_images, "benchmark", BENCHMARK_PACKAGES, say)


def tree_bytes(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(entry.lstat().st_size for entry in path.rglob("*"))


def compressed_bytes(root: Path, relatives: list[str]) -> int:
    """What these paths weigh in a gzipped tarball, as Heroku counts a slug's size."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for relative in relatives:
            archive.add(root / relative, arcname=relative)
    return len(buffer.getvalue())


def build_info(build: Build) -> dict:
    """The facts the buildpack recorded in the slug (vendor/jemalloc/build-info), if it did."""
    info = build.path("vendor/jemalloc/build-info")
    if not info.exists():
        return {}
    return dict(line.split("=", 1) for line in info.read_text().splitlines() if "=" in line)


def timed_compile(app: App, config: dict, what: str) -> tuple[Build, float]:
    started = time.monotonic()
    build = app.compile(config)
    seconds = time.monotonic() - started
    if not build.succeeded:
        raise BenchmarkError(f"the {what} failed (exit {build.returncode}):\n{build.output[-3000:]}")
    return build, seconds


def measure_builds(app: App, version: str, stock: bool) -> tuple[dict, dict]:
    """The builds the dynos run (keyed by stock_build), and the build figures.

    Cold and warm compile of the buildpack's default build, what it adds to the slug, and, with
    STOCK, a cold compile of the JEMALLOC_TUNING=none build too.
    """
    tarball, checksum = FIXTURES[version]
    # Dockerfile.test is built outside the timings: on Heroku the buildpack is simply there.
    buildpack_image(app.stack_images)
    builds = {}
    with SourceServer() as server:
        config = {"JEMALLOC_VERSION": version, "JEMALLOC_SOURCE_URL": server.url(tarball)}
        if checksum:
            config["JEMALLOC_CHECKSUM"] = checksum
        cold, cold_seconds = timed_compile(app, config, "cold compile")
        builds[False], warm_seconds = timed_compile(app, config, "warm compile")
        if stock:
            builds[True], stock_seconds = timed_compile(app, {**config, "JEMALLOC_TUNING": "none"},
                                                        "compile with JEMALLOC_TUNING=none")
    warm = builds[False]
    added = ["vendor/jemalloc", ".profile.d/jemalloc.sh"]
    figures = {
        "jemalloc_version": version,
        "source": tarball,
        "cold_compile_seconds": round(cold_seconds, 2),
        # The buildpack's own account of the cold build: the make of jemalloc, without the containers around it.
        "jemalloc_build_seconds": int(built[1]) if (built := re.search(r"Built in (\d+) s", cold.output)) else None,
        "warm_compile_seconds": round(warm_seconds, 2),
        "warm_compile_used_cache": "Using cached build" in warm.output,
        "slug_bytes_added": sum(tree_bytes(warm.path(relative)) for relative in added),
        "slug_bytes_added_compressed": compressed_bytes(warm.build_dir, added),
        "default_build_info": build_info(warm),
        "cold_compile_output": cold.output,
        "warm_compile_output": warm.output,
    }
    if stock:
        info = build_info(builds[True])
        if info.get("default_malloc_conf"):
            raise BenchmarkError(f"the JEMALLOC_TUNING=none build has compiled-in defaults: {info}")
        figures["stock_compile_seconds"] = round(stock_seconds, 2)
        figures["stock_build_info"] = info
    return builds, figures


def workload_command(language: str, parameters: dict) -> str:
    args = ["--threads", parameters["threads"], "--jobs", parameters["jobs"], "--seed", parameters["seed"],
            "--idle", parameters["idle"]]
    return f"{LANGUAGES[language]} {' '.join(shlex.quote(str(arg)) for arg in args)}"


def expected_options(compiled_conf: str, config: Config) -> dict:
    """The jemalloc settings the worker should report: the compiled-in defaults, then MALLOC_CONF key by key."""
    expected = {}
    for pair in f"{compiled_conf},{config.env.get('MALLOC_CONF', '')}".split(","):
        key, _, value = pair.partition(":")
        if key in ("narenas", "dirty_decay_ms"):
            expected[key] = int(value)
        elif key == "background_thread":
            expected[key] = value == "true"
    return expected


def run_dyno(app: App, slug: Path, compiled_conf: str, config: Config, language: str, parameters: dict,
             timeout: float) -> dict:
    """Boot one worker dyno that runs the workload once; its JSON line, checked for the allocator it ran on."""
    command = workload_command(language, parameters)
    dyno = app.boot(slug, command, config.env, process_type="worker")
    try:
        exited = dyno.wait(timeout)
    finally:
        remove_container(dyno.container)
    lines = [line for line in exited.stdout.splitlines() if line.startswith("{")]
    if exited.returncode != 0 or not lines:
        raise BenchmarkError(f"{config.name}/{language}: `{command}` exited {exited.returncode}:\n{exited.output[-3000:]}")
    result = json.loads(lines[-1])
    expected = LIBRARY if config.jemalloc else None
    if result["jemalloc"] != expected:
        raise BenchmarkError(f"{config.name}/{language}: expected {expected or 'no libjemalloc'} mapped, "
                             f"the worker had {result['jemalloc']} (environment: {result['environment']})")
    if config.jemalloc:
        reported = result.get("jemalloc_options") or {}
        wrong = {key: (value, reported.get(key)) for key, value in expected_options(compiled_conf, config).items()
                 if reported.get(key) != value}
        if wrong:
            raise BenchmarkError(f"{config.name}/{language}: jemalloc runs with other settings than configured "
                                 f"(setting: (expected, reported)): {wrong}")
    # jemalloc reports an option it does not understand on stderr, and ignores it.
    if "<jemalloc>" in exited.stderr:
        raise BenchmarkError(f"{config.name}/{language}: jemalloc complained:\n{exited.stderr[-2000:]}")
    result["config"] = config.name
    result["command"] = command
    result["stderr"] = exited.stderr
    return result


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs: list[dict], configs: list[Config], languages: list[str]) -> dict:
    """Per language and config: each metric's median and spread, its ratio to glibc, workers per 512 MB."""
    summary = {}
    for language in languages:
        per_config = {}
        for config in configs:
            mine = sorted((run for run in runs if run["language"] == language and run["config"] == config.name),
                          key=lambda run: run["round"])
            if not mine:
                continue
            figures = {metric: spread([run[metric] for run in mine]) for metric, *_ in METRICS}
            figures["allocator_overhead_bytes"] = spread(
                [run["after_work_rss_bytes"] - run["baseline_rss_bytes"] - run["live_heap_bytes"] for run in mine])
            figures["workers_per_512mb"] = math.floor(DYNO_MEMORY / figures["peak_rss_bytes"]["median"])
            baseline = {run["round"]: run for run in runs if run["language"] == language and run["config"] == BASELINE}
            ratios = {}
            for metric in RATIO_METRICS:
                # Paired by round: a config and glibc measured minutes apart share the machine's mood.
                paired = [run[metric] / baseline[run["round"]][metric] for run in mine
                          if run["round"] in baseline and baseline[run["round"]][metric]]
                if paired:
                    ratios[metric] = spread(paired)
            figures["ratio_to_glibc"] = ratios
            figures["runtime"] = mine[0]["runtime"]
            per_config[config.name] = figures
        glibc_workers = per_config.get(BASELINE, {}).get("workers_per_512mb")
        for figures in per_config.values():
            if glibc_workers:
                figures["ratio_to_glibc"]["workers_per_512mb"] = figures["workers_per_512mb"] / glibc_workers
        summary[language] = per_config
    return summary


def cell(figure: dict, divisor: float, decimals: int) -> str:
    median, low, high = (figure[key] / divisor for key in ("median", "min", "max"))
    if figure["n"] == 1:
        return f"{median:.{decimals}f}"
    return f"{median:.{decimals}f} [{low:.{decimals}f}-{high:.{decimals}f}]"


def ratio_cell(ratios: dict, metric: str) -> str:
    figure = ratios.get(metric)
    if figure is None:
        return "-"
    if isinstance(figure, float):
        return f"{figure:.2f}"
    if figure["n"] == 1:
        return f"{figure['median']:.2f}"
    return f"{figure['median']:.2f} [{figure['min']:.2f}-{figure['max']:.2f}]"


def text_table(headings: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in [headings, *rows]) for column in range(len(headings))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in [headings, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(headings: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headings) + " |", "|" + "|".join("---" for _ in headings) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def headline_table(summary: dict, render) -> str | None:
    """Ratios to glibc of both languages side by side (medians), and workers per 512 MB."""
    languages = [language for language, per_config in summary.items() if BASELINE in per_config]
    if not languages:
        return None
    short = {"python": "Py", "ruby": "Rb"}
    headings = ["config"]
    for language in languages:
        prefix = short.get(language, language)
        headings += [f"{prefix} steady", f"{prefix} after work", f"{prefix} peak", f"{prefix} wall",
                     f"{prefix} workers/512 MB"]
    names = list(summary[languages[0]])
    rows = []
    for name in names:
        row = [name]
        for language in languages:
            figures = summary[language][name]
            ratios = figures["ratio_to_glibc"]
            row += [f"{ratios[metric]['median']:.2f}" if metric in ratios else "-"
                    for metric in ("steady_rss_bytes", "after_work_rss_bytes", "peak_rss_bytes", "wall_seconds")]
            row.append(str(figures["workers_per_512mb"]))
        rows.append(row)
    return render(headings, rows)


def tables(summary: dict, render, title=lambda text: text) -> str:
    """The headline table, then the figures and ratios tables of every language, rendered by RENDER."""
    parts = []
    headline = headline_table(summary, render)
    if headline:
        parts.append(title("RSS and wall time as a ratio to glibc (median of the rounds), workers per 512 MB at peak RSS")
                     + "\n\n" + headline)
    for language, per_config in summary.items():
        if not per_config:
            continue
        runtime = next(iter(per_config.values()))["runtime"]
        rows = [[name, *(cell(figures[metric], divisor, decimals) for metric, _, divisor, decimals in METRICS),
                 str(figures["workers_per_512mb"])] for name, figures in per_config.items()]
        parts.append(title(f"{language} ({runtime}): median [min-max]") + "\n\n"
                     + render(["config", *(heading for _, heading, *_ in METRICS), "workers/512 MB"], rows))
        if BASELINE in per_config:
            rows = [[name, *(ratio_cell(figures["ratio_to_glibc"], metric) for metric in RATIO_METRICS),
                     ratio_cell(figures["ratio_to_glibc"], "workers_per_512mb")]
                    for name, figures in per_config.items()]
            headings = ["config", "peak RSS", "steady RSS", "after-work RSS", "wall", "CPU", "workers/512 MB"]
            parts.append(title(f"{language}: ratio to glibc, median of the rounds' ratios [min-max]") + "\n\n"
                         + render(headings, rows))
    return "\n\n".join(parts)


def build_lines(build: dict) -> list[str]:
    return [
        f"jemalloc {build['jemalloc_version']} from the offline fixture {build['source']}",
        f"cold compile {build['cold_compile_seconds']:.1f} s (the buildpack's make: {build['jemalloc_build_seconds']} s), "
        f"warm (cached) compile {build['warm_compile_seconds']:.1f} s"
        f"{'' if build['warm_compile_used_cache'] else ' (the warm compile did NOT use the cache)'}",
        f"slug bytes added: {build['slug_bytes_added']:,} ({build['slug_bytes_added_compressed']:,} gzipped)"
        " = vendor/jemalloc + .profile.d/jemalloc.sh",
        "the default build's compiled-in MALLOC_CONF: "
        f"{build['default_build_info'].get('default_malloc_conf') or 'none (jemalloc stock settings)'}",
        *([f"JEMALLOC_TUNING=none build (jemalloc-stock and the MALLOC_CONF candidates): "
           f"cold compile {build['stock_compile_seconds']:.1f} s"] if "stock_compile_seconds" in build else []),
    ]


def markdown_report(result: dict) -> str:
    parameters = result["parameters"]
    lines = [
        f"### {result['stack']}",
        "",
        f"`{result['command']}`, {result['started'][:10]}, {result['total_seconds'] / 60:.1f} min; "
        f"{parameters['threads']} threads, {parameters['jobs']} jobs, seed {parameters['seed']}, "
        f"{parameters['repetitions']} repetition(s), {parameters['idle']} s idle; "
        f"{result['machine']['cpus']} CPUs, load average {result['machine']['load_average_start'][0]:.1f} at the start.",
        "",
        *(f"- {line}" for line in build_lines(result["build"])),
        "",
        tables(result["summary"], markdown_table, title=lambda text: f"**{text}**"),
    ]
    return "\n".join(lines) + "\n"


def benchmark_stack(stack: Stack, configs: list[Config], languages: list[str], parameters: dict,
                    options: argparse.Namespace, command: str) -> dict:
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()
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
    runs = []
    try:
        say(f"== {stack.name}: compile (jemalloc {options.version})")
        builds, build_figures = measure_builds(app, options.version, any(config.stock_build for config in configs))
        for line in build_lines(build_figures):
            say(f"   {line}")
        slugs = {stock: app.slug(build) for stock, build in builds.items()}
        compiled_confs = {stock: build_info(build).get("default_malloc_conf", "") for stock, build in builds.items()}

        total = parameters["repetitions"] * len(configs) * len(languages)
        say(f"== {stack.name}: {total} worker dynos, configs interleaved round-robin")
        for round_number in range(parameters["repetitions"]):
            # Each round starts one config later, so that no config always runs first.
            shift = round_number % len(configs)
            for config in configs[shift:] + configs[:shift]:
                for language in languages:
                    result = run_dyno(app, slugs[config.stock_build], compiled_confs[config.stock_build], config,
                                      language, parameters, options.dyno_timeout)
                    result["round"] = round_number
                    runs.append(result)
                    say(f"   [{len(runs)}/{total}] round {round_number + 1} {config.name:<28} {language:<6} "
                        f"peak {result['peak_rss_bytes'] / MIB:6.1f} MiB  steady {result['steady_rss_bytes'] / MIB:6.1f}  "
                        f"after {result['after_work_rss_bytes'] / MIB:6.1f}  wall {result['wall_seconds']:5.2f} s")
    finally:
        app.cleanup()
        shutil.rmtree(source_root, ignore_errors=True)

    return {
        "benchmark": "memory",
        "stack": stack.name,
        "command": command,
        "started": started_at.isoformat(timespec="seconds"),
        "timestamp": started_at.strftime("%Y%m%dT%H%M%SZ"),
        "total_seconds": round(time.monotonic() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
        },
        "images": {"run": stack_images.run, "benchmark_run": run_image, "build": stack_images.build,
                   "upstream": stack_images.upstream},
        "parameters": parameters,
        "configs": {config.name: {"env": config.env, "about": config.about, "stock_build": config.stock_build}
                    for config in configs},
        "build": build_figures,
        "summary": summarize(runs, configs, languages),
        "runs": runs,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run-synthetic",
        description="Memory of a threaded Python and Ruby job worker per allocator config, in dynos of an app "
                    "built with this buildpack.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="configs:\n" + "\n".join(f"  {config.name:<30} {config.about}" for config in CONFIGS.values())
               + "\n  jemalloc+CONF                  one per --malloc-conf CONF, on the JEMALLOC_TUNING=none build"
               + "\n  (with JEMALLOC_ENABLED=true the shim also sets MALLOC_ARENA_MAX=2, which jemalloc ignores)"
               + "\n\nsizes:\n"
               + "\n".join(f"  {name:<8} {', '.join(f'{key} {value}' for key, value in preset.items())}"
                           for name, preset in SIZES.items()),
    )
    parser.add_argument("--stack", default="heroku-24", help="comma-separated stacks, or 'all' (default: heroku-24)")
    parser.add_argument("--size", choices=SIZES, default="default", help="preset of threads, jobs, repetitions, idle")
    parser.add_argument("--threads", type=int, help="worker threads per process")
    parser.add_argument("--jobs", type=int, help="jobs per process")
    parser.add_argument("--repetitions", type=int, help="runs of each config and language")
    parser.add_argument("--idle", type=float, help="seconds a worker idles after its work before the after-work RSS")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated config names (default: all)")
    parser.add_argument("--malloc-conf", action="append", default=[], metavar="CONF",
                        help="another candidate MALLOC_CONF, with JEMALLOC_ENABLED=true, on the JEMALLOC_TUNING=none "
                             "build (repeatable)")
    parser.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated: python, ruby (default: both)")
    parser.add_argument("--version", default="5.3.0", choices=sorted(FIXTURES),
                        help="JEMALLOC_VERSION, built from the offline fixtures (default 5.3.0)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--dyno-timeout", type=float, default=900, help="seconds allowed per worker dyno")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    # A stopped run still removes its containers and scratch directories (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parameters = dict(SIZES[options.size], seed=options.seed)
    for name in ("threads", "jobs", "repetitions", "idle"):
        if getattr(options, name) is not None:
            parameters[name] = getattr(options, name)
    try:
        stacks = selected_stacks(options.stack)
    except ValueError as error:
        say(str(error))
        return 2
    names = [name.strip() for name in options.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        say(f"unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
        return 2
    configs = [CONFIGS[name] for name in names]
    configs += [candidate(f"jemalloc+{conf}", conf) for conf in options.malloc_conf]
    languages = [name.strip() for name in options.languages.split(",") if name.strip()]
    if not languages or any(name not in LANGUAGES for name in languages):
        say(f"--languages takes {', '.join(LANGUAGES)}")
        return 2
    command = "benchmarks/run-synthetic" + "".join(f" {shlex.quote(arg)}" for arg in (sys.argv[1:] if argv is None else argv))

    options.output_dir.mkdir(parents=True, exist_ok=True)
    for stack in stacks:
        try:
            result = benchmark_stack(stack, configs, languages, parameters, options, command)
        except (BenchmarkError, DockerError, ImageError, images.ImageBuildError) as error:
            say(f"\nFAILED on {stack.name}: {error}")
            return 1
        json_path = options.output_dir / f"{result['timestamp']}-{stack.name}.json"
        json_path.write_text(json.dumps(result, indent=1) + "\n")
        markdown_path = json_path.with_suffix(".md")
        markdown_path.write_text(markdown_report(result))
        say(f"\n== {stack.name}: {parameters['threads']} threads, {parameters['jobs']} jobs, "
            f"{parameters['repetitions']} repetition(s), {result['total_seconds'] / 60:.1f} min in all")
        for line in build_lines(result["build"]):
            say(f"   {line}")
        say("")
        say(tables(result["summary"], text_table))
        say(f"\n   results: {json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path}"
            f" (and {markdown_path.name}, the tables in Markdown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
