"""The soak benchmark runs every real app end to end at its smoke size, and each figure it
reports is there and consistent with the dyno it measured.

One run, on heroku-24 when it is among the selected stacks (else on the first selected one):
`python -m soak --size smoke` with glibc, the buildpack's default jemalloc, the default without
its fork helper and the peer buildpack's setup, every app, a minute of load, as
`benchmarks/run` runs it; then its JSON file is checked as the benchmark's typed results
(soak.results). tests/test_soak_fit.py runs the fit run and the other peers.
"""

from __future__ import annotations

import json

import pytest

from common.configs import LIBRARY
from common.smoke import run_benchmark, smoke_stack
from soak.configs import CONFIGS as KNOWN_CONFIGS
from soak.results import LANGUAGE_NAMES, SoakResult

APPS = ("sidekiq", "puma", "celery-prefork", "celery-threads")
CONFIGS = ("glibc", "jemalloc", "jemalloc-no-fork-helper", "peer-buildpack")
# Whether a forked worker that works runs jemalloc's background thread, per config: only the
# buildpack's fork helper restarts it in a child.
BACKGROUND_THREAD_IN_FORKED_WORKERS = {"jemalloc": True, "jemalloc-no-fork-helper": False, "peer-buildpack": False}
# Apps whose workers are forked from a parent process.
FORKED = {"puma", "celery-prefork"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def soak(request, tmp_path_factory):
    """The smoke-size soak benchmark's typed result, terminal output, JSON file and its JSON."""
    stack = smoke_stack(request.config.getoption("--stack"))
    output_dir = tmp_path_factory.mktemp("soak-results")
    completed = run_benchmark(stack, ["--size", "smoke", "--configs", ",".join(CONFIGS)], output_dir, timeout=1800)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-6000:]
    results = list(output_dir.glob(f"*-{stack}-soak.json"))
    assert len(results) == 1, f"expected one JSON file in {list(output_dir.iterdir())}"
    assert results[0].with_suffix(".md").exists()
    data = json.loads(results[0].read_text())
    return SoakResult.from_json(data), completed.stdout, results[0], data


def run_of(result, app, config):
    (run,) = [run for run in result.runs if run.app == app and run.config == config]
    return run


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("app", APPS)
def test_each_app_ran_under_each_config_with_every_figure(soak, app, config):
    assert_every_figure(soak[0], run_of(soak[0], app, config))


def assert_every_figure(result, run, quota_mib: int = 512):
    """RUN of RESULT was done, and each of its figures is there and consistent with the others."""
    app, config = run.app, run.config
    assert not run.killed, run
    assert run.failures == 0
    figures = run.figures
    assert figures.jobs_sent > 0 and figures.jobs_done == figures.jobs_sent
    assert 0 < figures.start_pss <= figures.peak_pss <= figures.peak_rss * 1.01
    assert 0 < figures.steady_pss <= figures.peak_pss
    assert 0 < figures.after_idle_pss <= figures.peak_pss
    assert figures.slope_mib_per_min is not None
    assert all(value > 0 for value in figures.checkpoints.values())
    assert figures.cpu_seconds > 0 and figures.cpu_ms_per_job > 0
    assert figures.r14_seconds >= 0 and figures.r15 in (True, False)
    # One sample a second while the load ran and the dyno idled.
    load_and_idle = result.parameters.load_seconds + result.parameters.idle_seconds
    assert len(figures.series) >= load_and_idle * 0.8
    assert figures.workers_fit == (quota_mib * MIB - figures.base_peak_pss) // figures.worker_peak_pss
    summary = result.summary[app][config]
    assert summary.rounds == 1
    for name in ("steady_pss", "peak_pss", "after_idle_pss", "cpu_ms_per_job"):
        assert summary.ratio[name].median > 0


@pytest.mark.parametrize("app", APPS)
def test_jemalloc_splits_each_dyno_into_live_data_and_overhead_and_glibc_has_no_split(soak, app):
    result, _, _, _ = soak
    for config in CONFIGS[1:]:
        assert_live_data_and_overhead(run_of(result, app, config).figures)
    glibc = run_of(result, app, "glibc").figures
    assert (glibc.allocator_series, glibc.steady_allocated, glibc.metrics_lines) == ([], None, [])
    summary = result.summary[app]
    assert summary["jemalloc"].figures["resident_per_live"].median >= 1
    assert summary["glibc"].figures["resident_per_live"] is None


def assert_live_data_and_overhead(jemalloc):
    """A dyno on the slug's jemalloc split its memory into live data and overhead, and its
    processes logged the lines a user sees."""
    assert jemalloc.allocator_series, "no process of the jemalloc dyno published figures"
    assert all(0 < allocated <= resident for _, allocated, resident in jemalloc.allocator_series)
    assert 0 < jemalloc.steady_allocated and jemalloc.steady_overhead >= 0
    assert jemalloc.resident_per_live == pytest.approx(
        (jemalloc.steady_allocated + jemalloc.steady_overhead) / jemalloc.steady_allocated)
    for process in jemalloc.processes:
        if process.worker:
            assert process.allocated and process.resident >= process.allocated, process
    # What a user sees: a sample# line of every worker, and jemalloc-check's verdict for each.
    workers = {process.pid for process in jemalloc.processes if process.worker}
    assert len(jemalloc.metrics_lines) >= len(workers), jemalloc.metrics_lines
    assert all(" sample#jemalloc.allocated=" in line and " sample#jemalloc.resident=" in line
               for line in jemalloc.metrics_lines)
    assert len(jemalloc.check_lines) >= len(workers), jemalloc.check_lines
    assert all("; verdict: " in line for line in jemalloc.check_lines), jemalloc.check_lines


@pytest.mark.parametrize("app", APPS)
def test_every_process_ran_on_the_configured_allocator(soak, app):
    result, _, _, _ = soak
    for config in CONFIGS:
        expected = [LIBRARY] if config != "glibc" else []
        assert KNOWN_CONFIGS[config].mapped_libraries == expected
        processes = run_of(result, app, config).figures.processes
        assert processes, (app, config)
        assert all(process.mapped == expected for process in processes), (app, config, processes)


@pytest.mark.parametrize("app", APPS)
def test_the_workers_are_the_apps_own_processes(soak, app):
    result, _, _, _ = soak
    figures = run_of(result, app, "jemalloc").figures
    workers = [process for process in figures.processes if process.worker]
    expected = {"sidekiq": 1, "puma": 2, "celery-prefork": 4, "celery-threads": 1}[app]
    assert len(workers) == figures.workers == expected, figures.processes
    if app in FORKED:
        parents = {process.pid for process in figures.processes} - {worker.pid for worker in workers}
        assert all(worker.ppid in parents for worker in workers)


# CPU time a worker used while it was watched, above which it surely allocated: a Celery task
# takes about 130 ms, a request to the puma app several ms. A pool child that no task reached
# used none, and allocated nothing that a background thread could purge: it starts the thread at
# its first allocation.
WORKED_MS = 50


@pytest.mark.parametrize("app", sorted(FORKED))
def test_forked_workers_that_work_run_jemallocs_background_thread_only_with_the_fork_helper(soak, app):
    assert_background_thread_in_forked_workers(soak[0], app)


def assert_background_thread_in_forked_workers(result, app):
    for config, expected in BACKGROUND_THREAD_IN_FORKED_WORKERS.items():
        processes = run_of(result, app, config).figures.processes
        working = [process for process in processes
                   if process.worker and process.cpu_ms_while_sampled >= WORKED_MS]
        assert working, (config, processes)
        assert all(process.background_thread is expected for process in working), (config, processes)


def test_the_fork_exec_cost_is_measured(soak):
    figures = soak[0].fork_exec.figures
    recorded = soak[3]["fork_exec"]["figures"]
    for kind in ("wall_seconds", "cpu_seconds"):
        assert figures[kind].restart > 0 and figures[kind].no_restart > 0
        assert recorded[kind]["ratio"] == recorded[kind]["restart"] / recorded[kind]["no-restart"]
        assert (recorded[kind]["restart"], recorded[kind]["no-restart"]) == (figures[kind].restart,
                                                                             figures[kind].no_restart)


@pytest.mark.parametrize("language", ["c", "ruby", "python"])
def test_the_work_right_after_fork_is_measured_in_each_language(soak, language):
    result, stdout, path, data = soak
    after_fork = result.fork_exec.after_fork
    rounds = len(result.fork_exec.wall_seconds["restart"])
    for kind in ("wall_seconds", "cpu_seconds"):
        figure = after_fork.figures[language][kind]
        assert figure.restart > 0 and figure.no_restart > 0 and figure.ratio > 0
        recorded = data["fork_exec"]["after_fork"]["figures"][language][kind]
        assert recorded == {"restart": figure.restart, "no-restart": figure.no_restart,
                            "ratio": figure.no_restart / figure.restart}
        assert all(len(times) == rounds for times in getattr(after_fork, kind)[language].values())
    (line,) = [line for line in result.fork_exec.after_fork_lines() if line.startswith(f"{LANGUAGE_NAMES[language]}, ")]
    for shown in (stdout, path.with_suffix(".md").read_text()):
        assert f"fork without exec: {line}" in shown


def test_the_terminal_shows_each_apps_tables_and_a_chart_is_drawn(soak):
    _, stdout, path, _ = soak
    for app in APPS:
        assert f"{app} (" in stdout
    for heading in ("workers/512 MB", "R14 s", "slope MiB/min", "CPU/job", "fork+exec"):
        assert heading in stdout
    chart = path.with_suffix(".png")
    assert chart.exists() and chart.read_bytes().startswith(b"\x89PNG")
