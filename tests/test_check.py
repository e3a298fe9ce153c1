"""jemalloc-check tells whether jemalloc is active in a dyno, as /proc shows it, and why.

Every answer is compared with the truth read from /proc by the harness (Dyno.mapped_files).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pytest

from harness.dyno import Process
from harness.paths import DEFAULT_VERSION, LIBRARY, LIBRARY_FILE, fixture_path, slug_relative
ENABLED = {"JEMALLOC_ENABLED": "true"}
# Above the kernel's highest possible PID (PID_MAX_LIMIT, 2^22): no process can have it.
NO_SUCH_PID = 4194305
# A library every stack's run image has, to stand for one the app preloads itself.
APP_LIBRARY = "/lib/x86_64-linux-gnu/libz.so.1"


@dataclass
class Answer:
    """What jemalloc-check printed about the shell it ran in."""

    returncode: int
    headline: str
    fields: dict[str, str]
    stderr: str


def answer(result) -> Answer:
    lines = result.stdout.splitlines()
    assert lines, f"jemalloc-check printed nothing: {result.stderr}"
    fields = {}
    for line in lines[1:]:
        match = re.match(r"  (\S+) +(.*)$", line)
        assert match, f"unexpected line {line!r} in:\n{result.stdout}"
        fields[match[1]] = match[2]
    return Answer(result.returncode, lines[0], fields, result.stderr)


@dataclass
class Row:
    pid: int
    jemalloc: str
    background_thread: str
    rss: str
    live: str
    resident: str
    command: str
    mapped: str


def table(stdout: str) -> tuple[str, dict[int, Row]]:
    """The headline and the rows of jemalloc-check's process table, by PID: its indented lines,
    before the memory lines that may follow it."""
    lines = stdout.splitlines()
    assert re.split(r"\s{2,}", lines[1].strip()) == ["PID", "JEMALLOC", "BG THREAD", "RSS", "LIVE", "RESIDENT",
                                                      "COMMAND", "MAPPED"], stdout
    rows = {}
    for line in lines[2:]:
        if not line.startswith(" "):
            break
        pid, jemalloc, background_thread, rss, live, resident, command, mapped = re.split(r"\s{2,}", line.strip())
        rows[int(pid)] = Row(int(pid), jemalloc, background_thread, rss, live, resident, command, mapped)
    return lines[0], rows


# What jemalloc-check says when processes have jemalloc but none publishes figures.
NO_FIGURES = ("memory: no figures yet (with JEMALLOC_METRICS=true a process publishes them one interval after it "
              "starts, 60 s by default; without it, set it and restart the dyno)")


def truth(dyno, process: Process) -> str | None:
    """The libjemalloc file mapped into PROCESS according to /proc, or None."""
    mapped = dyno.mapped_files(process)
    assert len(mapped) <= 1, mapped
    return next(iter(mapped), None)


def vm_rss_kb(dyno, pid: int) -> int:
    status = dyno.exec(f"cat /proc/{pid}/status").stdout
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)[1])


# The shell's own answer: jemalloc-check with no argument.

def test_in_an_enabled_web_dyno_it_says_on_with_the_version_built(enabled_dyno):
    result = enabled_dyno.exec("jemalloc-check", login=True)
    said = answer(result)
    assert said.returncode == 0, result.output
    assert said.headline == "jemalloc is on: JEMALLOC_ENABLED=true"
    assert said.fields["library"].startswith(f"{LIBRARY} -> libjemalloc.so.2 (jemalloc {DEFAULT_VERSION}, built for ")
    assert said.fields["LD_PRELOAD"] == LIBRARY
    # What it found mapped in itself is what /proc shows in the dyno's processes.
    assert said.fields["mapped"] == truth(enabled_dyno, enabled_dyno.main_process()) == LIBRARY_FILE
    assert said.fields["settings"] == ("JEMALLOC_ENABLED=true JEMALLOC_PROCESS_TYPES=(unset) "
                                       "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=(unset) DYNO=web.1 "
                                       "MALLOC_CONF=(unset) MALLOC_ARENA_MAX=2")
    assert said.fields["after-fork"] == "on: forked children get the background thread back (the default)"
    assert "hint" not in said.fields
    assert said.stderr == ""


def test_without_jemalloc_enabled_it_says_off_because_it_is_unset(built_app):
    app, build = built_app
    said = answer(app.run(build, "jemalloc-check"))
    assert said.returncode == 1
    assert said.headline == "jemalloc is off: JEMALLOC_ENABLED is unset"
    assert said.fields["mapped"] == "(none)"
    assert said.fields["LD_PRELOAD"] == "(unset)"
    assert said.fields["hint"] == "heroku config:set JEMALLOC_ENABLED=true"
    assert f"(jemalloc {DEFAULT_VERSION}," in said.fields["library"]


def test_jemalloc_enabled_false_is_off_and_says_so(built_app):
    app, build = built_app
    said = answer(app.run(build, "jemalloc-check", {"JEMALLOC_ENABLED": "false"}))
    assert said.returncode == 1
    assert said.headline == "jemalloc is off: JEMALLOC_ENABLED=false"


def test_a_value_it_does_not_understand_is_off_and_named(built_app):
    app, build = built_app
    said = answer(app.run(build, "jemalloc-check", {"JEMALLOC_ENABLED": "maybe"}))
    assert said.returncode == 1
    assert said.headline == "jemalloc is off: JEMALLOC_ENABLED='maybe' is not understood"
    assert said.fields["mapped"] == "(none)"


@pytest.mark.parametrize(("process_type", "returncode", "headline", "mapped"), [
    ("web", 1, "jemalloc is off: process type web is not in JEMALLOC_PROCESS_TYPES (worker,clock)", None),
    ("worker", 0, "jemalloc is on: JEMALLOC_ENABLED=true and process type worker is in JEMALLOC_PROCESS_TYPES (worker,clock)",
     LIBRARY_FILE),
], ids=["a web dyno outside them is off", "a worker dyno listed in them is on"])
def test_jemalloc_process_types_decide_and_it_says_why(built_app, process_type, returncode, headline, mapped):
    app, build = built_app
    dyno = app.boot(build, "bin/probe", {**ENABLED, "JEMALLOC_PROCESS_TYPES": "worker,clock"}, process_type=process_type)
    dyno.wait_for_output("ready")
    said = answer(dyno.exec("jemalloc-check", login=True))
    assert said.returncode == returncode
    assert said.headline == headline
    assert said.fields["mapped"] == (mapped or "(none)")
    assert truth(dyno, dyno.main_process()) == mapped


def test_a_missing_library_is_off_and_named(built_app):
    app, build = built_app
    slug = app.slug(build)
    (slug / slug_relative(LIBRARY_FILE)).unlink()
    said = answer(app.run(slug, "jemalloc-check", ENABLED))
    assert said.returncode == 1
    assert said.headline == f"jemalloc is off: library missing ({LIBRARY})"
    assert said.fields["library"].endswith("missing)")


def test_an_ld_preload_replaced_after_the_shim_is_off_and_named(built_app):
    app, build = built_app
    slug = app.slug(build)
    (slug / ".profile").write_text(f"export LD_PRELOAD={APP_LIBRARY}\n")
    said = answer(app.run(slug, "jemalloc-check", ENABLED))
    assert said.returncode == 1
    assert said.headline == "jemalloc is off: LD_PRELOAD does not contain the library"
    assert said.fields["LD_PRELOAD"] == APP_LIBRARY


def test_under_the_wrapper_it_is_on_and_says_jemalloc_enabled_is_not_why(built_app):
    app, build = built_app
    said = answer(app.run(build, "jemalloc.sh jemalloc-check"))
    assert said.returncode == 0
    assert said.headline == ("jemalloc is on: LD_PRELOAD contains the library although JEMALLOC_ENABLED is unset "
                             "(jemalloc.sh, or LD_PRELOAD set by hand)")
    assert said.fields["mapped"] == LIBRARY_FILE


def test_in_the_release_phase_it_answers_for_the_release_dyno(built_app):
    app, build = built_app
    config = {**ENABLED, "JEMALLOC_PROCESS_TYPES": "web,worker"}
    left_out = app.run(build, "jemalloc-check", config, process_type="release")
    assert left_out.returncode == 1
    assert answer(left_out).headline == "jemalloc is off: process type release is not in JEMALLOC_PROCESS_TYPES (web,worker)"
    listed = app.run(build, "jemalloc-check", {**config, "JEMALLOC_PROCESS_TYPES": "web,worker,release"},
                     process_type="release")
    assert listed.returncode == 0, listed.output
    # Under the wrapper it only asks whether the build's library loads, whatever the process types.
    assert app.run(build, "jemalloc.sh jemalloc-check", config, process_type="release").returncode == 0


def test_a_command_gated_by_it_does_not_start_without_jemalloc(built_app):
    app, build = built_app
    gated = "jemalloc-check >/dev/null && exec bin/probe"
    refused = app.run(build, gated, process_type="worker")
    assert refused.returncode == 1
    assert "ready" not in refused.stdout
    dyno = app.boot(build, gated, ENABLED, process_type="worker")
    dyno.wait_for_output("ready")
    assert truth(dyno, dyno.main_process()) == LIBRARY_FILE


# Other processes: --all and PIDs.

def test_all_lists_every_process_of_an_enabled_dyno_as_proc_shows_it(enabled_dyno):
    processes = enabled_dyno.processes()
    result = enabled_dyno.exec("jemalloc-check --all", login=True)
    assert result.returncode == 0, result.output
    headline, rows = table(result.stdout)
    assert headline == f"jemalloc is on: mapped in all {len(processes)} processes"
    assert sorted(rows) == [process.pid for process in processes]
    for process in processes:
        row = rows[process.pid]
        assert (row.jemalloc, row.mapped, row.command) == ("yes", truth(enabled_dyno, process), process.name)
        assert re.fullmatch(r"\d+\.\d MB", row.rss)
        # Without JEMALLOC_METRICS no process publishes figures, and the check says how to get them.
        assert (row.live, row.resident) == ("-", "-")
    assert result.stdout.splitlines()[-1] == NO_FIGURES


def test_all_in_a_dyno_without_jemalloc_says_no_for_every_process(disabled_dyno):
    processes = disabled_dyno.processes()
    result = disabled_dyno.exec("jemalloc-check --all", login=True)
    assert result.returncode == 1
    headline, rows = table(result.stdout)
    assert headline == f"jemalloc is off: not mapped in {len(processes)} of {len(processes)} processes"
    assert sorted(rows) == [process.pid for process in processes]
    for process in processes:
        assert truth(disabled_dyno, process) is None
        assert (rows[process.pid].jemalloc, rows[process.pid].mapped) == ("no", "-")
    # Without jemalloc there are no figures to get, and no line about them.
    assert not [line for line in result.stdout.splitlines() if line.startswith("memory")], result.stdout


def test_pids_given_are_checked_one_by_one(enabled_dyno):
    main = enabled_dyno.main_process()
    child = enabled_dyno.children(main)[0]
    result = enabled_dyno.exec(f"jemalloc-check {main.pid} {child.pid}", login=True)
    assert result.returncode == 0, result.output
    headline, rows = table(result.stdout)
    assert headline == "jemalloc is on: mapped in all 2 processes"
    assert list(rows) == [main.pid, child.pid]
    assert rows[child.pid].command == "sleep"
    assert rows[main.pid].mapped == rows[child.pid].mapped == truth(enabled_dyno, child) == LIBRARY_FILE


def test_a_pid_that_does_not_exist_is_said_and_fails_the_check(enabled_dyno):
    main = enabled_dyno.main_process()
    result = enabled_dyno.exec(f"jemalloc-check {main.pid} {NO_SUCH_PID}", login=True)
    assert result.returncode == 1
    headline, rows = table(result.stdout)
    assert headline == "jemalloc is off: not mapped in 1 of 2 processes"
    assert rows[main.pid].jemalloc == "yes"
    assert (rows[NO_SUCH_PID].jemalloc, rows[NO_SUCH_PID].mapped) == ("no", "(no such process)")


# --json

def test_json_agrees_with_the_text_and_with_proc(enabled_dyno):
    text = answer(enabled_dyno.exec("jemalloc-check", login=True))
    data = enabled_dyno.check()
    assert data.returncode == 0
    assert data["active"] is True
    assert f"jemalloc is {data['reason']}" == text.headline
    assert data["mapped"] == text.fields["mapped"] == LIBRARY_FILE
    assert (data["ld_preload"], data["library"], data["library_exists"]) == (LIBRARY, LIBRARY, True)
    assert data["version"] == DEFAULT_VERSION
    assert data["library_version"].startswith(f"{DEFAULT_VERSION}-0-g")
    assert data["settings"] == {"JEMALLOC_ENABLED": "true", "JEMALLOC_PROCESS_TYPES": None,
                                "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK": None, "DYNO": "web.1", "MALLOC_CONF": None,
                                "MALLOC_ARENA_MAX": "2", "process_type": "web", "background_thread_after_fork": "on"}
    assert data["processes"] == []


def test_json_lists_processes_with_their_rss_as_proc_shows_them(enabled_dyno):
    processes = enabled_dyno.processes()
    data = enabled_dyno.check("--all")
    assert data.returncode == 0, data.stderr
    assert data["active"] is True
    assert [entry["pid"] for entry in data["processes"]] == [process.pid for process in processes]
    for entry, process in zip(data["processes"], processes):
        assert entry["comm"] == process.name
        assert entry["jemalloc"] is True
        assert entry["mapped"] == truth(enabled_dyno, process)
        rss = vm_rss_kb(enabled_dyno, process.pid)
        assert abs(entry["rss_kb"] - rss) <= max(512, rss // 10), (entry, rss)


def test_json_says_off_and_escapes_what_it_quotes(built_app):
    app, build = built_app
    awkward = 'a "quoted" \\ value\twith a tab'
    data = app.check(build, config={"JEMALLOC_ENABLED": awkward})
    assert data.returncode == 1
    assert data["active"] is False
    assert data["reason"] == f"off: JEMALLOC_ENABLED='{awkward}' is not understood"
    assert data["settings"]["JEMALLOC_ENABLED"] == awkward
    assert data["mapped"] is None and data["ld_preload"] is None


def test_json_for_a_missing_pid_says_it_does_not_exist(enabled_dyno):
    data = enabled_dyno.check(NO_SUCH_PID)
    assert data.returncode == 1
    (entry,) = data["processes"]
    assert entry == {"pid": NO_SUCH_PID, "exists": False, "comm": None, "jemalloc": False, "mapped": None,
                     "background_thread": None, "rss_kb": None, "allocated_bytes": None, "resident_bytes": None,
                     "memory": None, "error": "no such process"}


# Usage

@pytest.mark.parametrize("arguments", ["--bogus", "abc", "--all 12", "12 -x"])
def test_usage_errors_exit_2_and_print_nothing_on_stdout(enabled_dyno, arguments):
    result = enabled_dyno.exec(f"jemalloc-check {arguments}", login=True)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(" !     jemalloc-check: ")


def test_help_exits_0(enabled_dyno):
    result = enabled_dyno.exec("jemalloc-check --help", login=True)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: jemalloc-check [--json] [--all | PID...]")


# What the build records for it.

def test_the_build_records_its_facts_in_the_slug_outside_the_cache(built_app, stack):
    app, build = built_app
    info = build.build_info()
    sha256 = hashlib.sha256(fixture_path(DEFAULT_VERSION).read_bytes())
    assert info["version"] == DEFAULT_VERSION
    assert info["source_sha256"] == sha256.hexdigest()
    assert info["profiling"] == "false"
    assert info["stack"] == stack.name
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["built_at"])
    assert not list(app.cache_dir.rglob("build-info"))
