"""The soak benchmark's fit run (`benchmarks/run --fit`) packs each app's workers into one dyno,
runs every config a user would pick instead of this buildpack side by side, and says how long
the same workers spent over the quota under each.

One run at the smoke size, on heroku-26 when it is among the selected stacks (there every peer
config means something: Ubuntu's libjemalloc2, Python 3.14's mimalloc), else on the first one,
with a few workers per app so that the dynos of a batch fit the machine.
"""

from __future__ import annotations

import json

import pytest

from common.smoke import run_benchmark, smoke_stack
from soak.apps import APPS
from soak.configs import CONFIGS, DEFAULT_VERSION, FIT_CONFIGS
from soak.report import fit_sentence
from soak.results import SoakResult
from test_soak import (FORKED, assert_background_thread_in_forked_workers, assert_every_figure,
                       assert_live_data_and_overhead)

WORKERS = {"sidekiq": 2, "puma": 3, "celery-prefork": 3, "celery-threads": 2}


@pytest.fixture(scope="module")
def fit(request, tmp_path_factory):
    """The smoke-size fit run's typed result, its terminal output, and its stack."""
    stack = smoke_stack(request.config.getoption("--stack"), preferred="heroku-26")
    output_dir = tmp_path_factory.mktemp("fit-results")
    workers = ",".join(f"{app}={count}" for app, count in WORKERS.items())
    # arena2 is the soak smoke's and unit-tested config; the rest are what the fit run adds.
    configs = ",".join(name for name in FIT_CONFIGS if name != "arena2")
    completed = run_benchmark(stack, ["--fit", "--size", "smoke", "--configs", configs, "--workers", workers],
                              output_dir, timeout=2400)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-6000:]
    (path,) = output_dir.glob(f"*-{stack}-soak.json")
    return SoakResult.from_json(json.loads(path.read_text())), completed.stdout, stack


def expected_configs(stack: str, app: str) -> list[str]:
    return [name for name in FIT_CONFIGS if name != "arena2" and CONFIGS[name].applies_to(stack, APPS[app].language)]


def test_the_fit_run_builds_the_version_users_get_and_records_the_workers(fit):
    result, stdout, _ = fit
    assert result.jemalloc_version == DEFAULT_VERSION
    assert result.parameters.workers == WORKERS
    # It measures memory only: the fork helper's cost is the normal run's (tests/test_soak.py).
    assert result.fork_exec is None and "fork+exec" not in stdout


@pytest.mark.parametrize("app", WORKERS)
def test_each_app_ran_its_workers_under_every_config_that_applies(fit, app):
    result, _, stack = fit
    ran = [run.config for run in result.runs if run.app == app]
    assert ran == expected_configs(stack, app)
    for run in result.runs:
        if run.app == app:
            assert_every_figure(result, run)
            workers = [process for process in run.figures.processes if process.worker]
            assert len(workers) == run.figures.workers == WORKERS[app], (run.config, run.figures.processes)


@pytest.mark.parametrize("app", WORKERS)
def test_every_process_ran_on_its_configs_allocator(fit, app):
    result, _, _ = fit
    for run in result.runs:
        if run.app == app:
            config = CONFIGS[run.config]
            assert run.figures.processes
            for process in run.figures.processes:
                assert process.mapped == config.mapped_libraries, (run.config, process)
            if config.slug_jemalloc:
                assert_live_data_and_overhead(run.figures)
            else:
                # Ubuntu's jemalloc and mimalloc publish no figures of the slug's kind.
                assert run.figures.allocator_series == [] and run.figures.metrics_lines == []


@pytest.mark.parametrize("app", sorted(FORKED))
def test_only_the_fork_helper_gives_forked_workers_the_background_thread(fit, app):
    assert_background_thread_in_forked_workers(fit[0], app)


@pytest.mark.parametrize("app", WORKERS)
def test_the_terminal_says_what_the_same_workers_did_under_each_config(fit, app):
    result, stdout, _ = fit
    sentence = fit_sentence(app, result.summary[app], WORKERS[app], 512, result.parameters.load_seconds / 60)
    assert sentence.startswith(f"{app}: {WORKERS[app]} workers ran for ")
    assert sentence in stdout
    for config in result.summary[app]:
        assert config in sentence
