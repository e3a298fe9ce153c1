"""The memory benchmark runs end to end at its smoke size and measures what it says it measures.

One run, on heroku-24 when it is among the selected stacks (else on the first selected one):
`benchmarks/memory.py --size smoke` with glibc and the buildpack's default jemalloc, as a user
would run it, then its JSON file is checked.
"""

import json
import os
import subprocess
import sys

import pytest

from harness.paths import REPO
from harness.stacks import selected_stacks

LIBRARY = "/app/vendor/jemalloc/lib/libjemalloc.so.2"
CONFIGS = ("glibc", "jemalloc")
LANGUAGES = ("python", "ruby")
RUN_FIELDS = ("baseline_rss_bytes", "peak_rss_bytes", "steady_rss_bytes", "after_work_rss_bytes",
              "live_heap_bytes", "wall_seconds", "cpu_seconds", "series", "jemalloc", "environment")
SUMMARY_FIELDS = ("peak_rss_bytes", "steady_rss_bytes", "after_work_rss_bytes", "live_heap_bytes",
                  "baseline_rss_bytes", "wall_seconds", "cpu_seconds", "workers_per_512mb", "ratio_to_glibc")


@pytest.fixture(scope="module")
def benchmark(request, tmp_path_factory):
    """The smoke-size benchmark's JSON result and terminal output."""
    names = [stack.name for stack in selected_stacks(request.config.getoption("--stack"))]
    stack = "heroku-24" if "heroku-24" in names else names[0]
    output_dir = tmp_path_factory.mktemp("benchmark-results")
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "memory.py"), "--stack", stack, "--size", "smoke",
         "--configs", ",".join(CONFIGS), "--output-dir", str(output_dir)],
        env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = list(output_dir.glob(f"*-{stack}.json"))
    assert len(results) == 1, f"expected one JSON file in {list(output_dir.iterdir())}"
    assert results[0].with_suffix(".md").exists()
    return json.loads(results[0].read_text()), completed.stdout


def runs_of(result, config, language):
    return [run for run in result["runs"] if run["config"] == config and run["language"] == language]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("config", CONFIGS)
def test_each_config_and_language_ran_once_with_every_figure(benchmark, config, language):
    result, _ = benchmark
    runs = runs_of(result, config, language)
    assert len(runs) == 1
    run = runs[0]
    assert set(RUN_FIELDS) <= run.keys()
    assert run["threads"] == 2 and run["jobs"] == 20
    assert 0 < run["baseline_rss_bytes"] <= run["steady_rss_bytes"] <= run["peak_rss_bytes"]
    assert 0 < run["after_work_rss_bytes"] <= run["peak_rss_bytes"]
    assert run["live_heap_bytes"] > 0 and run["wall_seconds"] > 0 and run["cpu_seconds"] > 0
    assert run["series"], "no RSS samples"
    figures = result["summary"][language][config]
    assert set(SUMMARY_FIELDS) <= figures.keys()
    assert figures["workers_per_512mb"] == 512 * 1024 * 1024 // figures["peak_rss_bytes"]["median"]
    assert set(figures["ratio_to_glibc"]) >= {"peak_rss_bytes", "steady_rss_bytes", "after_work_rss_bytes",
                                              "wall_seconds", "cpu_seconds", "workers_per_512mb"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_jemalloc_dyno_ran_on_the_slugs_jemalloc_through_the_shim(benchmark, language):
    result, _ = benchmark
    run = runs_of(result, "jemalloc", language)[0]
    assert run["jemalloc"] == LIBRARY
    assert run["environment"]["LD_PRELOAD"] == LIBRARY.removesuffix(".2")
    # The shim's glibc setting, set alongside the preload.
    assert run["environment"]["MALLOC_ARENA_MAX"] == "2"
    assert run["stderr"] == ""
    # What jemalloc itself says it runs with (the runner checks it against the build's defaults).
    options = run["jemalloc_options"]
    assert set(options) == {"narenas", "background_thread", "dirty_decay_ms"}
    assert options["narenas"] >= 1


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_glibc_dyno_had_no_jemalloc_at_all(benchmark, language):
    result, _ = benchmark
    run = runs_of(result, "glibc", language)[0]
    assert run["jemalloc"] is None and run["jemalloc_options"] is None
    assert run["environment"] == {"LD_PRELOAD": None, "MALLOC_ARENA_MAX": None, "MALLOC_CONF": None}


def test_the_build_figures_are_a_cold_compile_a_cached_one_and_the_slug_bytes_added(benchmark):
    build = benchmark[0]["build"]
    assert build["jemalloc_version"] == "5.3.0"
    assert "Building jemalloc 5.3.0" in build["cold_compile_output"]
    assert build["warm_compile_used_cache"]
    assert 0 < build["warm_compile_seconds"] < build["cold_compile_seconds"]
    assert 100_000 < build["slug_bytes_added_compressed"] < build["slug_bytes_added"]
    assert build["default_build_info"]["version"] == "5.3.0"


def test_the_terminal_shows_the_tables_of_both_languages(benchmark):
    stdout = benchmark[1]
    for heading in ("python (CPython", "ruby (ruby", "ratio to glibc", "workers/512 MB"):
        assert heading in stdout
    assert "cold compile" in stdout and "slug bytes added" in stdout
