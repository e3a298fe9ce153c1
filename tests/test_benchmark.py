"""The synthetic benchmark runs end to end at its smoke size and measures what it says it measures.

One run, on heroku-24 when it is among the selected stacks (else on the first selected one):
`python -m synthetic --size smoke` with glibc and the buildpack's default jemalloc, as
`benchmarks/run-synthetic` runs it, then its JSON file is checked: its keys, then its figures as
the benchmark's typed results (synthetic.results).
"""

import json

import pytest

from common.configs import LIBRARY
from common.smoke import run_benchmark, smoke_stack
from synthetic.results import StackResult

CONFIGS = ("glibc", "jemalloc")
LANGUAGES = ("python", "ruby")
RUN_FIELDS = ("baseline_rss_bytes", "peak_rss_bytes", "steady_rss_bytes", "after_work_rss_bytes",
              "live_heap_bytes", "wall_seconds", "cpu_seconds", "series", "jemalloc", "environment")
SUMMARY_FIELDS = ("peak_rss_bytes", "steady_rss_bytes", "after_work_rss_bytes", "live_heap_bytes",
                  "baseline_rss_bytes", "wall_seconds", "cpu_seconds", "workers_per_512mb", "ratio_to_glibc")


@pytest.fixture(scope="module")
def benchmark(request, tmp_path_factory):
    """The smoke-size benchmark's JSON, its typed result and its terminal output."""
    stack = smoke_stack(request.config.getoption("--stack"))
    output_dir = tmp_path_factory.mktemp("benchmark-results")
    completed = run_benchmark("synthetic", stack, ["--size", "smoke", "--configs", ",".join(CONFIGS)], output_dir,
                              timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = list(output_dir.glob(f"*-{stack}.json"))
    assert len(results) == 1, f"expected one JSON file in {list(output_dir.iterdir())}"
    assert results[0].with_suffix(".md").exists()
    data = json.loads(results[0].read_text())
    return data, StackResult.from_json(data), completed.stdout


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("config", CONFIGS)
def test_each_config_and_language_ran_once_with_every_figure(benchmark, config, language):
    data, result, _ = benchmark
    assert [run for run in data["runs"] if run["config"] == config and run["language"] == language]
    assert all(set(RUN_FIELDS) <= run.keys() for run in data["runs"])
    assert set(SUMMARY_FIELDS) <= data["summary"][language][config].keys()
    runs = result.runs_of(config, language)
    assert len(runs) == 1
    run = runs[0]
    assert run.threads == 2 and run.jobs == 20
    assert 0 < run.baseline_rss_bytes <= run.steady_rss_bytes <= run.peak_rss_bytes
    assert 0 < run.after_work_rss_bytes <= run.peak_rss_bytes
    assert run.live_heap_bytes > 0 and run.wall_seconds > 0 and run.cpu_seconds > 0
    assert run.series, "no RSS samples"
    figures = result.summary[language][config]
    assert figures.workers_per_512mb == 512 * 1024 * 1024 // figures.figures["peak_rss_bytes"].median
    assert set(figures.ratio_to_glibc) >= {"peak_rss_bytes", "steady_rss_bytes", "after_work_rss_bytes",
                                           "wall_seconds", "cpu_seconds", "workers_per_512mb"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_jemalloc_dyno_ran_on_the_slugs_jemalloc_through_the_shim(benchmark, language):
    run = benchmark[1].runs_of("jemalloc", language)[0]
    assert run.jemalloc == LIBRARY
    assert run.environment["LD_PRELOAD"] == LIBRARY.removesuffix(".2")
    # The shim's glibc setting, set alongside the preload.
    assert run.environment["MALLOC_ARENA_MAX"] == "2"
    assert run.stderr == ""
    # What jemalloc itself says it runs with (the runner checks it against the build's defaults).
    options = run.jemalloc_options
    assert set(options) == {"narenas", "background_thread", "dirty_decay_ms"}
    assert options["narenas"] >= 1


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_glibc_dyno_had_no_jemalloc_at_all(benchmark, language):
    run = benchmark[1].runs_of("glibc", language)[0]
    assert run.jemalloc is None and run.jemalloc_options is None
    assert run.environment == {"LD_PRELOAD": None, "MALLOC_ARENA_MAX": None, "MALLOC_CONF": None}


def test_the_build_figures_are_a_cold_compile_a_cached_one_and_the_slug_bytes_added(benchmark):
    build = benchmark[1].build
    assert build.jemalloc_version == "5.3.0"
    assert "Building jemalloc 5.3.0" in build.cold_compile_output
    assert build.warm_compile_used_cache
    assert 0 < build.warm_compile_seconds < build.cold_compile_seconds
    assert 100_000 < build.slug_bytes_added_compressed < build.slug_bytes_added
    assert build.default_build_info["version"] == "5.3.0"


def test_the_terminal_shows_the_tables_of_both_languages(benchmark):
    stdout = benchmark[2]
    for heading in ("python (CPython", "ruby (ruby", "ratio to glibc", "workers/512 MB"):
        assert heading in stdout
    assert "cold compile" in stdout and "slug bytes added" in stdout
