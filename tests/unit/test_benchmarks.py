"""The soak benchmark's pure parts: spreads, tables, configs, the parsing of what its scripts
print, the summaries, the typed results' JSON and the feeder's job mix (benchmarks/common, soak,
load)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import pytest

from common.cli import Clock, Machine, StackRun
from common.configs import JEMALLOC, JEMALLOC_STOCK, Config, candidate, is_malloc_conf, names
from common.stats import Spread, spread
from common.tables import cell, markdown_table, text_table
from harness.paths import REPO
from harness.stacks import selected_stacks
from soak.__main__ import parse_workers, write_result
from soak.__main__ import result_of as soak_result_of
from soak.configs import SIZES as SOAK_SIZES
from soak.analysis import summarize as soak_summarize
from soak.analysis import workers as soak_workers
from soak.apps import APPS as SOAK_APPS
from soak.apps import packages_for
from soak.configs import CONFIGS as SOAK_CONFIGS
from soak.configs import DEFAULT_VERSION as SOAK_DEFAULT_VERSION
from soak.configs import FIT_WORKERS, LIBRARY
from soak.configs import candidate as soak_candidate
from soak.forkexec import (AFTER_FORK_WORK, C_OPERATIONS, PYTHON_ITERATIONS, RUBY_ITERATIONS, after_fork_script,
                           parse_after_fork, parse_fork_exec)
from soak.report import markdown as soak_markdown
from soak.report import tables as soak_tables
from soak.results import (AfterForkCost, ForkExecCost, ProcessFigures, RunFigures, SoakParameters, SoakResult,
                          SoakRun)
from soak.runner import load_for
from soak.sampler import DynoSampler, ProcessRecord

MIB = 1024 * 1024


def test_a_spread_leaves_out_missing_values_and_is_none_without_any():
    assert spread([3, None, 1, 2]) == Spread(2, 1, 3, 3)
    assert spread([None]) is None and spread([]) is None


def test_a_cell_is_the_median_with_its_range_unless_one_value():
    assert cell(Spread(2 * MIB, MIB, 3 * MIB, 3), MIB, 1) == "2.0 [1.0-3.0]"
    assert cell(Spread(2 * MIB, MIB, 3 * MIB, 3), MIB, 1, ranges=False) == "2.0"
    assert cell(Spread(1.234, 1.234, 1.234, 1), decimals=2) == "1.23"
    assert cell(0.5, decimals=2) == "0.50"
    assert cell(None) == "-"


def test_tables_render_the_same_rows_for_the_terminal_and_markdown():
    assert text_table(["a", "bb"], [["ccc", "d"]]) == "a    bb\n---  --\nccc  d"
    assert markdown_table(["a", "bb"], [["ccc", "d"]]) == "| a | bb |\n|---|---|\n| ccc | d |"


def test_the_soak_runs_the_shared_configs_and_every_config_reads_back_from_its_json():
    assert SOAK_CONFIGS["jemalloc"] is JEMALLOC and SOAK_CONFIGS["jemalloc-stock"] is JEMALLOC_STOCK
    assert (JEMALLOC_STOCK.build, JEMALLOC.build) == ("stock", "default")
    stock_candidate = candidate("c", "narenas:1", "stock", "narenas:1 on the stock build")
    assert stock_candidate == Config("c", {"JEMALLOC_ENABLED": "true", "MALLOC_CONF": "narenas:1"}, True,
                                     "narenas:1 on the stock build", "stock")
    # The soak's candidates amend the buildpack's default, so they run on the default build.
    assert soak_candidate("narenas:1") == Config("jemalloc+narenas:1",
                                                 {"JEMALLOC_ENABLED": "true", "MALLOC_CONF": "narenas:1"}, True,
                                                 SOAK_CONFIGS["jemalloc+narenas:1"].about)
    for config in (stock_candidate, *SOAK_CONFIGS.values()):
        assert Config.from_json(config.name, config.to_json()) == config
        if config.library is None and not config.stacks:
            # As results written before the configs knew their library and stacks record them.
            recorded = {"env": config.env, "about": config.about, "build": config.build}
            assert Config.from_json(config.name, recorded) == config


def test_option_lists_and_malloc_confs_are_parsed():
    assert names(" glibc, jemalloc ,,") == ["glibc", "jemalloc"]
    assert is_malloc_conf("narenas:1,dirty_decay_ms:500")
    assert not is_malloc_conf("narenas=1") and not is_malloc_conf("narenas:1,")


def test_the_fork_exec_measurements_are_parsed_from_the_script():
    cost = parse_fork_exec("restart 2000000 0m0.010s 0m0.020s 0m1.000s 0m0.970s\n"
                           "no-restart 1000000 0m0.010s 0m0.020s 0m0.500s 0m0.470s\nnoise\n")
    assert cost.figures["wall_seconds"].ratio == 2.0
    assert cost.figures["cpu_seconds"].restart == pytest.approx(2.0)
    assert cost.to_json()["figures"]["wall_seconds"] == {"restart": 2.0, "no-restart": 1.0, "ratio": 2.0}
    assert "ratio 2.000 wall" in cost.lines()[0]
    assert parse_fork_exec("restart 1 0m0s 0m0s 0m0s 0m0s\n") is None


AFTER_FORK_OUTPUT = (
    "c restart 20000000 ns_per_op=12.50 user=0.200 sys=0.040\n"
    "c no-restart 20000000 ns_per_op=12.00 user=0.200 sys=0.000\n"
    "ruby restart ms=400.000 cpu_ms=390.000\nruby no-restart ms=300.000 cpu_ms=290.000\n"
    "python no-restart ms=250.000 cpu_ms=200.000\npython restart ms=250.000 cpu_ms=250.000\nnoise\n"
    "ruby restart ms=100.000 cpu_ms=90.000\nruby no-restart ms=100.000 cpu_ms=90.000\n"
    "ruby restart ms=500.000 cpu_ms=490.000\nruby no-restart ms=400.000 cpu_ms=390.000\n"
)


def test_the_after_fork_measurements_are_parsed_per_language_as_wall_and_cpu_seconds():
    cost = parse_after_fork(AFTER_FORK_OUTPUT)
    # C: the count times the probe's nanoseconds per pair, and bash's user plus sys time.
    assert cost.wall_seconds["c"] == {"restart": [pytest.approx(0.25)], "no-restart": [pytest.approx(0.24)]}
    assert cost.cpu_seconds["c"] == {"restart": [pytest.approx(0.24)], "no-restart": [pytest.approx(0.2)]}
    assert cost.wall_seconds["ruby"] == {"restart": [0.4, 0.1, 0.5], "no-restart": [0.3, 0.1, 0.4]}
    assert cost.cpu_seconds["ruby"] == {"restart": [0.39, 0.09, 0.49], "no-restart": [0.29, 0.09, 0.39]}
    assert cost.work == AFTER_FORK_WORK
    # A language that printed none of one kind leaves the measurement without a figure.
    assert parse_after_fork(AFTER_FORK_OUTPUT.replace("python restart", "python rest")) is None
    assert parse_after_fork("c restart 10 ns_per_op=1 user=0 sys=0\nc no-restart 10 ns_per_op=1 user=0 sys=0\n") is None


def test_an_after_fork_ratio_is_the_time_without_the_restart_over_the_time_with_it():
    figures = parse_after_fork(AFTER_FORK_OUTPUT).figures
    assert list(figures) == ["c", "ruby", "python"]
    # The medians of the rounds; above 1 the child ran faster with the restart, below slower.
    ruby = figures["ruby"]["wall_seconds"]
    assert (ruby.restart, ruby.no_restart) == (0.4, 0.3) and ruby.ratio == pytest.approx(0.75)
    assert figures["c"]["wall_seconds"].ratio == pytest.approx(0.96)
    assert figures["c"]["cpu_seconds"].ratio == pytest.approx(0.2 / 0.24)
    assert figures["python"]["wall_seconds"].ratio == 1.0 and figures["python"]["cpu_seconds"].ratio == 0.8
    lines = parse_after_fork(AFTER_FORK_OUTPUT).lines()
    assert lines[0] == (f"C, {C_OPERATIONS:,} malloc/free pairs of 48-144 bytes in a child right after its fork, "
                        "median of 1: 0.250 s wall and 0.240 s CPU with the background thread restarted after fork, "
                        "0.240 s and 0.200 s with JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false: ratio (without/with) "
                        "0.960 wall, 0.833 CPU")
    assert lines[1].startswith("Ruby, ") and "median of 3" in lines[1] and "0.750 wall, 0.744 CPU" in lines[1]
    assert lines[2].startswith("Python, ") and lines[2].endswith("1.000 wall, 0.800 CPU")


def test_the_after_fork_figures_keep_their_json_keys_and_read_back():
    cost = parse_after_fork(AFTER_FORK_OUTPUT)
    data = json.loads(json.dumps(cost.to_json()))
    assert list(data) == ["figures", "wall_seconds", "cpu_seconds", "work"]
    assert data["figures"]["ruby"]["wall_seconds"] == {"restart": 0.4, "no-restart": 0.3, "ratio": 0.3 / 0.4}
    assert list(data["figures"]["c"]) == ["wall_seconds", "cpu_seconds"]
    assert AfterForkCost.from_json(data) == cost


def test_fork_exec_results_without_the_after_fork_figures_still_read():
    # Results files written before the fork-without-exec measurement have no after_fork key.
    recorded = ForkExecCost({"restart": [2.0], "no-restart": [1.0]}, {"restart": [1.0], "no-restart": [1.0]}).to_json()
    assert "after_fork" not in recorded
    old = ForkExecCost.from_json(recorded)
    assert old.after_fork is None and old.after_fork_lines() == []
    assert old.headed_lines() == [f"fork+exec: {line}" for line in old.lines()]
    with_after_fork = ForkExecCost(old.wall_seconds, old.cpu_seconds, parse_after_fork(AFTER_FORK_OUTPUT))
    again = ForkExecCost.from_json(json.loads(json.dumps(with_after_fork.to_json())))
    assert again == with_after_fork
    assert again.headed_lines()[1:] == [f"fork without exec: {line}" for line in again.after_fork.lines()]


STUB = """#!/bin/bash
# What {name} prints; it logs the switch it ran with, its first argument and its last (the
# programs of ruby -e and python3 -c are in between).
echo "{name} ${{JEMALLOC_BACKGROUND_THREAD_AFTER_FORK:-on}} $1 ${{@: -1}}" >>"$STUB_LOG"
echo "{output}"
"""


def test_the_after_fork_script_alternates_the_kinds_and_switches_only_no_restart_off(tmp_path):
    # The script in this machine's bash, with fork_probe, ruby and python3 stubbed: each stub
    # prints what the real one does and logs the switch it ran with.
    for name, output in (("fork_probe", "ns_per_op=10.00"), ("ruby", "ms=300.000 cpu_ms=290.000"),
                         ("python3", "ms=200.000 cpu_ms=190.000")):
        stub = tmp_path / name
        stub.write_text(STUB.format(name=name, output=output))
        stub.chmod(0o755)
    log = tmp_path / "log"
    completed = subprocess.run(["bash", "-c", after_fork_script(2, probe=str(tmp_path / "fork_probe"))],
                               env={"PATH": f"{tmp_path}:/usr/bin:/bin", "STUB_LOG": str(log)},
                               capture_output=True, text=True, timeout=20)
    assert completed.returncode == 0, completed.stderr
    cost = parse_after_fork(completed.stdout)
    assert cost.wall_seconds["c"]["restart"] == [pytest.approx(C_OPERATIONS * 10e-9)] * 2
    # bash's `time` of the probe: the stub's CPU time, a few milliseconds.
    assert all(0 <= seconds < 1 for seconds in cost.cpu_seconds["c"]["no-restart"])
    assert cost.cpu_seconds["python"] == {"restart": [0.19, 0.19], "no-restart": [0.19, 0.19]}
    runs = [line.split(" ", 2) for line in log.read_text().splitlines()]
    assert [(name, switch) for name, switch, _ in runs] == [
        ("fork_probe", "on"), ("fork_probe", "false"), ("ruby", "on"), ("ruby", "false"),
        ("python3", "on"), ("python3", "false"),
        # The second round starts with the kind the first ended with.
        ("fork_probe", "false"), ("fork_probe", "on"), ("ruby", "false"), ("ruby", "on"),
        ("python3", "false"), ("python3", "on")]
    assert [arguments for _, _, arguments in runs[:6:2]] == [
        f"work {C_OPERATIONS}", f"-e {RUBY_ITERATIONS}", f"-c {PYTHON_ITERATIONS}"]


def test_the_after_fork_script_stops_at_the_first_failure(tmp_path):
    stub = tmp_path / "fork_probe"
    stub.write_text("#!/bin/sh\necho 'fork_probe: no mallctl' >&2\nexit 2\n")
    stub.chmod(0o755)
    completed = subprocess.run(["bash", "-c", after_fork_script(2, probe=str(stub))], env={"PATH": "/usr/bin:/bin"},
                               capture_output=True, text=True, timeout=20)
    assert completed.returncode != 0 and completed.stdout == ""
    assert "no mallctl" in completed.stderr


def soak_run(config: str, steady: int, killed: bool = False) -> SoakRun:
    if killed:
        return SoakRun("sidekiq", config, 0, oom_killed=True, log_tail="killed", feeder=["x"])
    process = ProcessFigures(2, 1, "ruby", "sidekiq", [], None, steady, steady, True, 500)
    figures = RunFigures([(0.0, steady, steady)], steady, {"1min": steady}, steady, steady, steady, 0.5, steady, 0.0,
                         False, 10, 10, 0.0, 5.0, 500.0, 1, steady, 0, 512 * MIB // steady, [process])
    return SoakRun("sidekiq", config, 0, figures)


def test_the_soak_summary_counts_a_killed_dyno_as_r15_and_pairs_ratios_by_round():
    runs = [soak_run("glibc", 200 * MIB), soak_run("jemalloc", 100 * MIB), soak_run("arena2", 0, killed=True)]
    summary = soak_summarize(runs, ["sidekiq"], ["glibc", "jemalloc", "arena2"], "glibc")["sidekiq"]
    assert summary["jemalloc"].ratio["steady_pss"] == Spread(0.5, 0.5, 0.5, 1)
    assert summary["jemalloc"].figures["workers_fit"].median == 5
    assert summary["arena2"].r15_runs == 1 and summary["arena2"].figures["peak_pss"] is None


def test_the_soak_result_keeps_its_json_keys_reads_back_and_renders():
    runs = [soak_run("glibc", 200 * MIB), soak_run("jemalloc", 100 * MIB), soak_run("arena2", 0, killed=True)]
    configs = [SOAK_CONFIGS[name] for name in ("glibc", "jemalloc", "arena2")]
    cost = ForkExecCost({"restart": [2.0], "no-restart": [1.0]}, {"restart": [1.0], "no-restart": [1.0]},
                        parse_after_fork(AFTER_FORK_OUTPUT))
    result = SoakResult("heroku-24", "benchmarks/run", "2026-01-01T00:00:00+00:00", "20260101T000000Z", 60.0,
                        Machine(2, "Linux"), "5.3.0", "image", SoakParameters(45, 10, 1, (1.0, 3.0), 1, 512, "smoke"),
                        {"sidekiq": "Sidekiq"}, configs, cost,
                        soak_summarize(runs, ["sidekiq"], [config.name for config in configs], "glibc"), runs)
    data = json.loads(json.dumps(result.to_json()))
    assert list(data)[:7] == ["benchmark", "stack", "command", "started", "timestamp", "total_seconds", "machine"]
    assert data["benchmark"] == "soak" and data["machine"] == {"cpus": 2, "platform": "Linux"}
    # A results file of another benchmark (its "benchmark" key says which) is refused, not misread.
    with pytest.raises(ValueError, match="not a result of the soak benchmark: memory"):
        StackRun.header_from_json({**data, "benchmark": "memory"}, "soak")
    assert data["runs"][2] == {"app": "sidekiq", "config": "arena2", "round": 0, "killed": True, "oom_killed": True,
                               "log_tail": "killed", "feeder": ["x"]}
    assert data["runs"][0]["killed"] is False and data["runs"][0]["failures"] == 0
    assert data["fork_exec_lines"] == cost.lines()
    assert data["after_fork_lines"] == cost.after_fork.lines()
    assert data["fork_exec"]["after_fork"]["figures"]["c"]["wall_seconds"]["ratio"] == pytest.approx(0.96)
    again = SoakResult.from_json(data)
    assert again.summary == result.summary and [run.killed for run in again.runs] == [False, False, True]
    assert json.loads(json.dumps(again.to_json())) == data
    text = soak_tables(again, text_table)
    assert "sidekiq (Sidekiq): ratios to glibc" in text and "1/1" in text and "R14 s" in text
    markdown = soak_markdown(again)
    assert f"\n- fork+exec: {cost.lines()[0]}\n" in markdown
    for line in cost.after_fork.lines():
        assert f"\n- fork without exec: {line}\n" in markdown
    # A results file from before the after-fork measurement reads back, and renders without it.
    del data["after_fork_lines"], data["fork_exec"]["after_fork"]
    old = SoakResult.from_json(data)
    assert old.fork_exec.after_fork is None and "fork without exec" not in soak_markdown(old)
    assert json.loads(json.dumps(old.to_json())) == data


def test_a_fit_run_gives_each_app_the_defaults_workers_and_load_that_keeps_them_busy():
    assert parse_workers(None, fit=False) == {}
    assert parse_workers("puma=5", fit=True) == {**FIT_WORKERS, "puma": 5}
    for wrong in ("puma=0", "puma=x", "unicorn=2", "puma"):
        assert parse_workers(wrong, fit=True) is None
    # The size's rates are for the Procfile's workers (2 puma workers, 4 prefork children, one
    # Sidekiq process), and grow with the workers; puma gets connections for each worker.
    assert load_for(SOAK_APPS["puma"], 8, (1.5, 4.0)) == (16.0, 20)
    assert load_for(SOAK_APPS["puma"], None, (1.5, 4.0)) == (4.0, 5)
    assert load_for(SOAK_APPS["celery-prefork"], 8, (1.5, 4.0)) == (3.0, 5)
    assert load_for(SOAK_APPS["sidekiq"], 3, (1.5, 4.0)) == (4.5, 5)
    assert {app: SOAK_APPS[app].scaled(3) for app in ("puma", "celery-prefork", "sidekiq")} == {
        "puma": {"WEB_CONCURRENCY": "3"}, "celery-prefork": {"CELERY_CONCURRENCY": "3"},
        "sidekiq": {"WORKER_PROCESSES": "3"}}


def test_the_peer_configs_run_where_they_mean_something():
    stack_library, mimalloc = SOAK_CONFIGS["stack-libjemalloc2"], SOAK_CONFIGS["pymalloc-mimalloc"]
    assert stack_library.applies_to("heroku-26", "ruby") and not stack_library.applies_to("heroku-24", "ruby")
    assert mimalloc.applies_to("heroku-26", "python") and not mimalloc.applies_to("heroku-26", "ruby")
    assert not mimalloc.applies_to("heroku-24", "python")
    assert "libjemalloc2" in packages_for("heroku-26") and "libjemalloc2" not in packages_for("heroku-24")
    # What each process must map: the slug's jemalloc, Ubuntu's, or none.
    assert SOAK_CONFIGS["peer-buildpack"].mapped_libraries == [LIBRARY]
    assert SOAK_CONFIGS["peer-buildpack"].build == "stock"
    assert stack_library.mapped_libraries == ["/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"]
    assert mimalloc.mapped_libraries == [] and not mimalloc.slug_jemalloc and not stack_library.slug_jemalloc
    assert SOAK_CONFIGS["jemalloc-no-fork-helper"].env["JEMALLOC_BACKGROUND_THREAD_AFTER_FORK"] == "false"


def test_the_soak_benchmark_builds_the_version_users_get_by_default():
    newest = subprocess.run(["bash", "-c", "source lib/output.sh; source lib/versions.sh; versions::newest"],
                            cwd=REPO, capture_output=True, text=True, timeout=20)
    assert newest.returncode == 0, newest.stderr
    assert newest.stdout.strip() == SOAK_DEFAULT_VERSION


def test_a_process_on_another_allocator_or_without_the_configs_vars_is_a_problem():
    sampler = DynoSampler.__new__(DynoSampler)
    environment = {"PYTHONMALLOC": "mimalloc"}
    sampler.processes = {
        7: ProcessRecord(7, 1, "celery", "celery worker", [], environment=environment),
        8: ProcessRecord(8, 7, "celery", "celery worker", [LIBRARY], environment={}),
    }
    problems = sampler.allocator_problems(SOAK_CONFIGS["pymalloc-mimalloc"])
    assert problems == [f"PID 8 (celery worker) maps ['{LIBRARY}'], expected no jemalloc",
                        "PID 8 (celery worker) runs with PYTHONMALLOC='(unset)', expected 'mimalloc'"]
    sampler.processes.pop(8)
    assert sampler.allocator_problems(SOAK_CONFIGS["pymalloc-mimalloc"]) == []


def test_a_passing_child_of_a_worker_leaves_its_parent_a_worker():
    # As seen in a Celery threads worker on heroku-24: a fork of the worker, sampled for a few
    # seconds before its exec, under a shell that started the worker.
    sampler = DynoSampler.__new__(DynoSampler)
    sampler.processes = {
        5: ProcessRecord(5, 1, "bash", "bash -c celery worker", [], samples=80),
        6: ProcessRecord(6, 5, "python3", "celery worker --pool threads", [LIBRARY], samples=80),
        9: ProcessRecord(9, 6, "python3", "celery worker --pool threads", [LIBRARY], samples=3),
    }
    found, rest = soak_workers(sampler)
    assert [record.pid for record in found] == [6]
    assert sorted(record.pid for record in rest) == [5, 9]
    # A child that lives as long as the run is the worker, and its parent the master.
    sampler.processes[9].samples = 79
    found, rest = soak_workers(sampler)
    assert [record.pid for record in found] == [9]
    assert sorted(record.pid for record in rest) == [5, 6]


def test_a_run_that_fails_in_a_later_batch_keeps_the_finished_apps_in_a_partial_file(tmp_path):
    options = argparse.Namespace(version="5.3.1", quota=512, size="fit", seed=1, workers={"sidekiq": 3, "puma": 8},
                                 output_dir=tmp_path)
    configs = [SOAK_CONFIGS["glibc"], SOAK_CONFIGS["jemalloc"]]
    runs = [soak_run("glibc", 400 * MIB), soak_run("jemalloc", 200 * MIB)]
    partial = soak_result_of(selected_stacks("heroku-24")[0], Clock(), "benchmarks/run --fit", options,
                             SOAK_SIZES["fit"], "image", ["sidekiq"], configs, None, runs)
    path, _ = write_result(partial, options, suffix="-partial")
    assert path.name.endswith("-heroku-24-soak-partial.json") and path.with_suffix(".md").exists()
    again = SoakResult.from_json(json.loads(path.read_text()))
    assert list(again.apps) == ["sidekiq"] and again.parameters.workers == {"sidekiq": 3}
    assert [run.config for run in again.runs] == ["glibc", "jemalloc"]


def test_a_process_that_exits_between_two_reads_keeps_the_record_from_when_it_ran():
    # A zombie: its maps, command line and environment read empty, as in a dyno whose worker
    # has just exited; judged by that, it would be a process "without jemalloc".
    sampler = DynoSampler.__new__(DynoSampler)
    sampler.processes = {}
    child = subprocess.Popen(["sleep", "0"])
    try:
        deadline = time.monotonic() + 10
        while not open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].startswith(" Z"):
            assert time.monotonic() < deadline, "the child did not become a zombie"
            time.sleep(0.01)
        running = ProcessRecord(child.pid, os.getpid(), "celery", "celery worker", [LIBRARY],
                                environment={"JEMALLOC_ENABLED": "true"})
        sampler.processes[child.pid] = running
        assert sampler._discover(child.pid, time.time()) is None
        sampler._refresh(running)
        assert sampler.processes[child.pid].mapped == [LIBRARY]
        assert sampler.processes[child.pid].cmdline == "celery worker"
    finally:
        child.wait()


def test_a_fit_run_says_what_the_same_workers_did_under_each_config():
    runs = [soak_run("glibc", 600 * MIB), soak_run("jemalloc", 300 * MIB), soak_run("peer-buildpack", 0, killed=True)]
    runs[0].figures.r14_seconds = 42.0
    configs = [SOAK_CONFIGS[name] for name in ("glibc", "jemalloc", "peer-buildpack")]
    result = SoakResult("heroku-26", "benchmarks/run --fit", "2026-01-01T00:00:00+00:00", "20260101T000000Z", 60.0,
                        Machine(2, "Linux"), "5.3.1", "image",
                        SoakParameters(600, 60, 1, (1.5, 4.0), 1, 512, "fit", {"sidekiq": 3}),
                        {"sidekiq": "Sidekiq"}, configs, None,
                        soak_summarize(runs, ["sidekiq"], [config.name for config in configs], "glibc"), runs)
    again = SoakResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again.parameters.workers == {"sidekiq": 3} and again.configs == configs
    # A fit run measures memory only, not what the fork helper costs.
    assert again.fork_exec is None and "fork+exec" not in soak_markdown(again)
    sentence = ("sidekiq: 3 workers ran for 10 min in 512 MB with the buildpack's default (0 s over quota); the same 3: "
                "glibc over quota (R14) for 42 s; peer-buildpack went past twice the quota (R15: Heroku kills the dyno)")
    for text in (soak_tables(again, text_table), soak_markdown(again)):
        assert sentence in text and "resident/live" in text
    assert "| jemalloc | 0 | no | 300 | 300 |" in soak_markdown(again)


def test_the_heavy_load_exports_big_tables_far_more_often_from_the_same_seed():
    import itertools
    import sys

    sys.path.insert(0, str(REPO / "benchmarks" / "load"))
    try:
        import feeder
    finally:
        sys.path.pop(0)

    def big_exports(mix: str, rows: int) -> float:
        jobs = list(itertools.islice(feeder.job_stream(1, feeder.MIXES[mix]), 2000))
        assert jobs == list(itertools.islice(feeder.job_stream(1, feeder.MIXES[mix]), 2000))
        return sum(1 for kind, size, _ in jobs if kind == "csv" and size >= rows) / len(jobs)

    assert big_exports("worker", 300_000) < 0.01 and 0.17 < big_exports("worker-heavy", 300_000) < 0.23
    assert big_exports("web", 100_000) == 0 and 0.08 < big_exports("web-heavy", 100_000) < 0.12
