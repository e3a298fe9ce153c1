"""JEMALLOC_METRICS (src/metrics.c) in real dynos: a process on jemalloc logs its allocator figures
at the interval, publishes them for jemalloc-check, and jemalloc-check tells live data from the
allocator's overhead; off, nothing of it runs.

The processes are tests/programs/metrics_probe.c, built with the stack's compiler and run in
dynos of the default build with jemalloc on; each holds a known amount of memory, says what
jemalloc's own mallctl counts in it, and lives on for the checks.
"""

from __future__ import annotations

import re
import shlex
import time

import pytest

from harness import programs
from rules_cases import METRICS_VALUES

PROBE = f"{programs.MOUNT}/metrics_probe"
EVERY_SECOND = {"JEMALLOC_ENABLED": "true", "JEMALLOC_METRICS": "1"}
MB = 1 << 20
LINE = re.compile(
    r"jemalloc source=(?P<source>\S+) pid=(?P<pid>\d+) comm=(?P<comm>\S+)"
    r"(?P<samples>( sample#jemalloc\.\w+=\d+\.\d\dMB)+)")


@pytest.fixture(scope="session")
def metrics_probe(stack_images):
    return programs.build(stack_images, "metrics_probe")


def boot(built_app, metrics_probe, arguments: str, config=None, process_type: str = "worker",
         docker_options: tuple[str, ...] = ()):
    app, build = built_app
    dyno = app.boot(build, f"{PROBE} {arguments}", {**EVERY_SECOND, **(config or {})}, process_type,
                    docker_options=programs.dyno_options(metrics_probe) + docker_options)
    return dyno


def ready(dyno, count: int = 1, timeout: float = 120) -> dict[int, int]:
    """The probes' "ready" lines: pid -> what mallctl's stats.allocated said in that process."""
    deadline = time.monotonic() + timeout
    while True:
        found = {int(pid): int(allocated)
                 for pid, allocated in re.findall(r"ready pid=(\d+) allocated=(\d+)", dyno.logs()[0])}
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline and dyno.running(), dyno.logs()
        time.sleep(0.2)


def lines(stderr: str) -> list[dict]:
    """The metrics lines of STDERR, each as its keys and its sample# figures in MB."""
    parsed = []
    for line in stderr.splitlines():
        match = LINE.fullmatch(line)
        if match:
            figures = {name: float(value) for name, value in re.findall(r"sample#jemalloc\.(\w+)=([\d.]+)MB", line)}
            parsed.append({"source": match["source"], "pid": int(match["pid"]), "comm": match["comm"], **figures})
    return parsed


def figures_of(dyno, pid: int, timeout: float = 10) -> dict:
    """jemalloc-check --json's entry for PID, once the process has published its figures."""
    deadline = time.monotonic() + timeout
    while True:
        answer = dyno.check(pid)
        (row,) = answer["processes"]
        if row["allocated_bytes"] is not None or time.monotonic() > deadline:
            return row
        time.sleep(0.5)


def test_a_process_keeping_60_mb_reports_what_jemalloc_counts_in_it(built_app, metrics_probe):
    dyno = boot(built_app, metrics_probe, "keep 60 30")
    ((pid, in_process),) = ready(dyno).items()
    row = figures_of(dyno, pid)
    assert row["jemalloc"] is True
    assert row["allocated_bytes"] is not None, row
    assert abs(row["allocated_bytes"] - in_process) <= in_process / 10, (row, in_process)
    assert in_process >= 60 * MB
    assert row["resident_bytes"] >= row["allocated_bytes"]
    assert row["memory"]["live_bytes"] == row["allocated_bytes"]
    assert row["memory"]["overhead_bytes"] == row["resident_bytes"] - row["allocated_bytes"]


def test_scattered_frees_leave_resident_several_times_live_and_the_verdict_overhead(built_app, metrics_probe):
    dyno = boot(built_app, metrics_probe, "fragment 30")
    ((pid, in_process),) = ready(dyno).items()
    # The buildpack's dirty_decay_ms:1000 and background thread return the empty pages within
    # seconds; what stays resident is pages that still hold one live object.
    time.sleep(4)
    row = figures_of(dyno, pid)
    print(f"allocated={row['allocated_bytes']} resident={row['resident_bytes']} in-process={in_process}")
    assert row["resident_bytes"] >= 2.5 * row["allocated_bytes"], row
    assert row["memory"]["verdict"] == "overhead", row["memory"]
    text = dyno.exec(f"jemalloc-check {pid}", login=True).stdout
    header = text.splitlines()[1].split()
    assert header[header.index("RSS") + 1:header.index("RSS") + 3] == ["LIVE", "RESIDENT"], text
    assert re.search(rf"^memory {pid} .*verdict: overhead", text, re.MULTILINE), text


def test_growing_live_data_gets_the_verdict_live_data(built_app, metrics_probe):
    dyno = boot(built_app, metrics_probe, "grow 4")
    ((pid, in_process),) = ready(dyno, timeout=60).items()
    row = figures_of(dyno, pid)
    assert in_process >= 100 * MB
    assert row["memory"]["verdict"] == "live data", row["memory"]
    assert row["memory"]["growth_bytes"] >= 50 * MB and row["memory"]["samples"] >= 3, row["memory"]


def test_lines_come_at_the_interval_with_the_process_type(built_app, metrics_probe):
    dyno = boot(built_app, metrics_probe, "keep 10 6")
    ((pid, _),) = ready(dyno).items()
    result = dyno.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    logged = lines(result.stderr)
    assert logged, result.stderr
    assert {line["pid"] for line in logged} == {pid}, "a process other than the probe logged figures"
    assert 4 <= len(logged) <= 7, result.stderr
    for line in logged:
        assert (line["source"], line["comm"]) == ("worker.1", "metrics_probe")
        assert 9.5 <= line["allocated"] <= 12 and line["resident"] >= line["allocated"], line
        assert {"active", "retained", "dirty", "metadata", "overhead"} <= set(line), line
    assert len(result.stderr.splitlines()) == len(logged), "stderr has more than the figures"


@pytest.mark.parametrize("value", ["unset", "false", "bogus"])
def test_off_there_is_no_thread_no_line_and_no_file(built_app, metrics_probe, value):
    config = {"JEMALLOC_ENABLED": "true"}
    if value != "unset":
        config["JEMALLOC_METRICS"] = value
    app, build = built_app
    script = f"{PROBE} threads 3 & pid=$!; sleep 2.5; ls /tmp/jemalloc-metrics 2>&1; wait $pid"
    result = app.run(build, script, config, docker_options=programs.dyno_options(metrics_probe))
    assert result.returncode == 0, result.output
    threads = result.stdout.splitlines()[0].split()
    assert threads[:2] == ["threads", "metrics_probe"] and "jemalloc_stats" not in threads, result.stdout
    assert "No such file or directory" in result.stdout
    if value == "bogus":
        (warning,) = result.stderr.splitlines()
        assert warning.startswith(" !     jemalloc: JEMALLOC_METRICS='bogus' is not understood")
    else:
        assert result.stderr == ""


def test_on_the_library_reads_jemalloc_metrics_as_the_rules_do(built_app, metrics_probe):
    # Each value, straight in the probe's environment (the shim's warning is the rules' own test).
    app, build = built_app
    script = "".join(f"JEMALLOC_METRICS={shlex.quote(value)} {PROBE} threads 0\n"
                     for value, _ in METRICS_VALUES if value is not None)
    result = app.run(build, script, {"JEMALLOC_ENABLED": "true"}, docker_options=programs.dyno_options(metrics_probe))
    assert result.returncode == 0, result.output
    seen = result.stdout.splitlines()
    expected = [expected for value, expected in METRICS_VALUES if value is not None]
    assert len(seen) == len(expected), result.stdout
    for value, threads, reading in zip([v for v, _ in METRICS_VALUES if v is not None], seen, expected):
        on = reading not in ("off", "invalid")
        assert ("jemalloc_stats" in threads.split()) is on, (value, threads)


def test_forked_children_report_their_own_figures(built_app, metrics_probe):
    dyno = boot(built_app, metrics_probe, "fork 50 30")
    in_process = ready(dyno, count=2)
    parent = min(in_process)
    (child,) = set(in_process) - {parent}
    rows = {pid: figures_of(dyno, pid) for pid in in_process}
    for pid, row in rows.items():
        assert abs(row["allocated_bytes"] - in_process[pid]) <= in_process[pid] / 10, (pid, row, in_process)
    assert rows[child]["allocated_bytes"] >= rows[parent]["allocated_bytes"] + 45 * MB
    assert {line["pid"] for line in lines(dyno.logs()[1])} == {parent, child}


@pytest.mark.parametrize("place", ["missing", "read-only", "full"])
def test_a_place_to_publish_that_is_missing_read_only_or_full_stops_nothing(built_app, metrics_probe, place):
    # Missing: a file where the directory would be. Read-only and full: a /tmp of that kind.
    before = {"missing": "touch /tmp/jemalloc-metrics; ", "read-only": "", "full": "head -c 1M /dev/zero >/tmp/fill 2>/dev/null; "}
    options = {"missing": (), "read-only": ("--tmpfs", "/tmp:ro"), "full": ("--tmpfs", "/tmp:size=64k")}
    app, build = built_app
    script = f"{before[place]}{PROBE} keep 10 3; echo status=$?; ls -A /tmp/jemalloc-metrics 2>&1; true"
    result = app.run(build, script, EVERY_SECOND, docker_options=programs.dyno_options(metrics_probe) + options[place])
    assert result.returncode == 0, result.output
    assert "status=0" in result.stdout, result.output
    assert len(lines(result.stderr)) >= 2, result.stderr
    listing = result.stdout.split("status=0", 1)[1]
    assert not re.search(r"^\d+$", listing, re.MULTILINE), listing
