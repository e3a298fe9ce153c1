"""Command line of the synthetic burst benchmark (benchmarks/run-synthetic).

    benchmarks/run-synthetic                                  # heroku-24, default size (a few minutes)
    benchmarks/run-synthetic --stack heroku-22,heroku-24 --size long
    benchmarks/run-synthetic --configs glibc,jemalloc --malloc-conf 'narenas:1,tcache:false'

Run through benchmarks/run-synthetic (or with PYTHONPATH=tests:benchmarks and the venv's python,
`python -m synthetic`): it imports the test harness. Results go to benchmark-results/ (a JSON
file and a Markdown summary per stack).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from harness.paths import REPO

from common import cli
from common.cli import say
from common.configs import names
from common.tables import text_table

from .configs import CONFIGS, LANGUAGES, SIZES, candidate
from .measure import benchmark_stack
from .report import build_lines, markdown_report, tables
from .results import StackResult


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.parser(
        "benchmarks/run-synthetic",
        "Memory of a threaded Python and Ruby job worker per allocator config, in dynos of an app "
        "built with this buildpack.",
        "configs:\n" + "\n".join(f"  {config.name:<30} {config.about}" for config in CONFIGS.values())
               + "\n  jemalloc+CONF                  one per --malloc-conf CONF, on the JEMALLOC_TUNING=none build"
               + "\n  (with JEMALLOC_ENABLED=true the shim also sets MALLOC_ARENA_MAX=2, which jemalloc ignores)"
               + "\n\nsizes:\n"
               + "\n".join(f"  {name:<8} threads {preset.threads}, jobs {preset.jobs}, "
                           f"repetitions {preset.repetitions}, idle {preset.idle}" for name, preset in SIZES.items()),
    )
    cli.add_stack_option(parser)
    parser.add_argument("--size", choices=SIZES, default="default", help="preset of threads, jobs, repetitions, idle")
    parser.add_argument("--threads", type=int, help="worker threads per process")
    parser.add_argument("--jobs", type=int, help="jobs per process")
    parser.add_argument("--repetitions", type=int, help="runs of each config and language")
    parser.add_argument("--idle", type=float, help="seconds a worker idles after its work before the after-work RSS")
    cli.add_seed_option(parser)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated config names (default: all)")
    cli.add_malloc_conf_option(parser, "another candidate MALLOC_CONF, with JEMALLOC_ENABLED=true, on the "
                                       "JEMALLOC_TUNING=none build (repeatable)")
    parser.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated: python, ruby (default: both)")
    cli.add_output_options(parser)
    parser.add_argument("--dyno-timeout", type=float, default=900, help="seconds allowed per worker dyno")
    return parser.parse_args(argv)


def publish(result: StackResult, options: argparse.Namespace) -> None:
    """The result's JSON file and Markdown summary, and its tables on the terminal."""
    json_path = options.output_dir / f"{result.timestamp}-{result.stack}.json"
    cli.write_json(json_path, result.to_json())
    markdown_path = json_path.with_suffix(".md")
    markdown_path.write_text(markdown_report(result))
    parameters = result.parameters
    say(f"\n== {result.stack}: {parameters.threads} threads, {parameters.jobs} jobs, "
        f"{parameters.repetitions} repetition(s), {result.total_seconds / 60:.1f} min in all")
    for line in build_lines(result.build):
        say(f"   {line}")
    say("")
    say(tables(result.summary, text_table))
    say(f"\n   results: {json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path}"
        f" (and {markdown_path.name}, the tables in Markdown)")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    parameters = dataclasses.replace(
        SIZES[options.size], seed=options.seed,
        **{name: getattr(options, name) for name in ("threads", "jobs", "repetitions", "idle")
           if getattr(options, name) is not None})
    stacks = cli.stacks_of(options.stack)
    if stacks is None:
        return 2
    unknown = [name for name in names(options.configs) if name not in CONFIGS]
    if unknown:
        say(f"unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
        return 2
    configs = [CONFIGS[name] for name in names(options.configs)]
    configs += [candidate(f"jemalloc+{conf}", conf) for conf in options.malloc_conf]
    languages = names(options.languages)
    if not languages or any(name not in LANGUAGES for name in languages):
        say(f"--languages takes {', '.join(LANGUAGES)}")
        return 2
    command = cli.command_line("benchmarks/run-synthetic", argv)

    options.output_dir.mkdir(parents=True, exist_ok=True)
    return cli.run_stacks(
        stacks,
        lambda stack: benchmark_stack(stack, configs, languages, parameters, options.version, options.dyno_timeout,
                                      command),
        lambda stack, result: publish(result, options),
    )


if __name__ == "__main__":
    sys.exit(main())
