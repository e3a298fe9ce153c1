"""jemalloc-check and the figures a process on jemalloc publishes with JEMALLOC_METRICS=true:
reading them (proc::read_metrics, runtime/lib/check-proc.sh), which takes a file only when it is
this very process's and recent, and saying from them whether live data or jemalloc's overhead
grew (render::memory, runtime/lib/check-render.sh), as text and as JSON.

The processes are real (a `sleep` of this machine, and one with a stand-in libjemalloc mapped: a
copy of libz under that name, as in test_preload_rules), so their start times in /proc are true;
the metrics files are written in a temporary directory, never in /tmp/jemalloc-metrics.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.paths import REPO
from shell import script

PROC = ["runtime/lib/check-proc.sh"]
RENDER = ["runtime/lib/check-render.sh"]
MIB = 1024 * 1024
INTERVAL = 60


def start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat, counted after the name's last ')'."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat.rsplit(b")", 1)[1].split()[19])


def now() -> int:
    return int(time.time())


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def figures(pid: int, at: int, /, **changes) -> dict[str, int | str | None]:
    """A valid file's key=value pairs for process PID sampled at AT (epoch seconds), with CHANGES
    (None drops a key)."""
    values = {"format": 1, "pid": pid, "starttime": start_time(pid), "interval": INTERVAL, "samples": 35,
              "first_at": at - 35 * INTERVAL, "first_allocated": 30 * MIB, "first_resident": 60 * MIB, "at": at,
              "allocated": 85 * MIB, "active": 90 * MIB, "resident": 120 * MIB, "retained": 40 * MIB,
              "dirty": 12 * MIB, "metadata": 4 * MIB, "peak_resident": 125 * MIB}
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def write(directory: Path, pid: int, values: dict | bytes) -> None:
    text = values if isinstance(values, bytes) else "".join(f"{key}={value}\n" for key, value in values.items()).encode()
    (directory / str(pid)).write_bytes(text)


READ = """declare -A m=(); proc::read_metrics "$1" "$2" m "$3"
for k in "${!m[@]}"; do printf '%s=%s\\n' "$k" "${m[$k]}"; done"""


def read_metrics(directory: Path, pid: int, at_now: int) -> dict[str, int]:
    done = script(PROC, READ, str(directory), str(pid), str(at_now), timeout=10)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return {key: int(value) for key, value in (line.split("=") for line in done.stdout.splitlines())}


# Reading a file: proc::start_time and proc::read_metrics.

def test_the_start_time_is_field_22_whatever_the_name_holds(tmp_path):
    # The name is field 2, in parentheses; this one has spaces, parentheses and a newline.
    link = tmp_path / "a) 1 (2\n) x"
    link.symlink_to(shutil.which("sleep"))
    process = subprocess.Popen([link, "60"])
    try:
        assert b") 1 (2" in Path(f"/proc/{process.pid}/stat").read_bytes()
        done = script(PROC, 'proc::start_time "$1" s; printf %s "$s"', str(process.pid))
        assert (done.returncode, done.stdout, done.stderr) == (0, str(start_time(process.pid)), "")
    finally:
        process.kill()
        process.wait()
    gone = script(PROC, 'proc::start_time "$1" s; printf %s "$s"', str(process.pid))
    assert (gone.returncode, gone.stdout, gone.stderr) == (0, "", "")


def test_a_valid_file_gives_its_figures_and_ignores_what_it_does_not_know(tmp_path, sleeper):
    at = now() - 5
    values = figures(sleeper, at)
    # Unknown keys and lines are ignored, a leading zero is no octal, the first of two lines counts.
    text = ("".join(f"{key}={value}\n" for key, value in values.items()) + "future_key=7\nnot a line\n=3\n"
            "allocated=1\n").replace("samples=35", "samples=035")
    write(tmp_path, sleeper, text.encode())
    expected = {key: value for key, value in values.items() if key not in ("format", "pid", "starttime")}
    assert read_metrics(tmp_path, sleeper, now()) == expected


def test_older_releases_without_retained_and_dirty_still_give_figures(tmp_path, sleeper):
    write(tmp_path, sleeper, figures(sleeper, now(), retained=None, dirty=None, active=None, metadata=None,
                                     peak_resident=None))
    read = read_metrics(tmp_path, sleeper, now())
    assert set(read) == {"interval", "samples", "first_at", "first_allocated", "first_resident", "at", "allocated",
                         "resident"}


def test_a_sample_two_intervals_and_10_s_old_is_the_oldest_taken(tmp_path, sleeper):
    at = now()
    write(tmp_path, sleeper, figures(sleeper, at))
    assert read_metrics(tmp_path, sleeper, at + 2 * INTERVAL + 10)
    assert read_metrics(tmp_path, sleeper, at + 2 * INTERVAL + 11) == {}
    # The interval is the file's own.
    write(tmp_path, sleeper, figures(sleeper, at, interval=5))
    assert read_metrics(tmp_path, sleeper, at + 20)
    assert read_metrics(tmp_path, sleeper, at + 21) == {}


@pytest.mark.parametrize("change", [
    {"pid": 1}, {"starttime": 1}, {"format": 2}, {"format": None}, {"pid": None}, {"starttime": None},
    {"resident": None}, {"first_at": None}, {"interval": None}, {"allocated": "12kB"}, {"allocated": -5},
    {"allocated": ""}, {"first_resident": "1" * 19},
], ids=lambda change: ",".join(f"{key}={value}" for key, value in change.items()))
def test_a_file_that_is_not_this_processs_or_lacks_a_figure_gives_none(tmp_path, sleeper, change):
    write(tmp_path, sleeper, figures(sleeper, now(), **change))
    assert read_metrics(tmp_path, sleeper, now()) == {}


def test_the_file_of_a_process_under_another_pid_gives_none(tmp_path, sleeper):
    # A file left by a process that exited, under the PID of another: its own pid and start time.
    write(tmp_path, sleeper, figures(sleeper, now(), pid=os.getpid(), starttime=start_time(os.getpid())))
    assert read_metrics(tmp_path, sleeper, now()) == {}


@pytest.mark.parametrize("content", [b"", b"\x00\xff\x89PNG\r\n\x1a\n" * 100, b"format=1\n" + b"x" * 100000,
                                     b"format=1\x00pid=1\n" * 1000],
                         ids=["empty", "binary", "a long line", "many lines"])
def test_garbage_gives_none_without_a_word(tmp_path, sleeper, content):
    write(tmp_path, sleeper, content)
    assert read_metrics(tmp_path, sleeper, now()) == {}


def test_no_directory_no_file_or_no_regular_file_gives_none_without_a_word(tmp_path, sleeper):
    assert read_metrics(tmp_path / "missing", sleeper, now()) == {}
    assert read_metrics(tmp_path, sleeper, now()) == {}
    (tmp_path / str(sleeper)).mkdir()
    assert read_metrics(tmp_path, sleeper, now()) == {}
    (tmp_path / str(sleeper)).rmdir()
    # A FIFO would block the check forever if it were opened.
    os.mkfifo(tmp_path / str(sleeper))
    assert read_metrics(tmp_path, sleeper, now()) == {}


def stand_in_library() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/libz.so.1") + glob.glob("/lib/*/libz.so.1") + glob.glob("/usr/lib*/libz.so.1"))
    return found[0] if found else None


@pytest.fixture
def on_jemalloc(tmp_path):
    """A process with a stand-in libjemalloc.so.2 mapped."""
    library = stand_in_library()
    if not library:
        pytest.skip("no libz.so.1 on this machine to stand in for libjemalloc.so")
    shutil.copy(library, tmp_path / "libjemalloc.so.2")
    process = subprocess.Popen(["sleep", "60"], env={"PATH": "/usr/bin:/bin",
                                                      "LD_PRELOAD": str(tmp_path / "libjemalloc.so.2")})
    time.sleep(0.2)
    yield process.pid
    process.kill()
    process.wait()


INSPECT = """declare -A p=(); proc::inspect_process "$1" p "$2" "$3"
printf '%s=%s\\n' mapped "${p[mapped]}" allocated "${p[allocated]}" resident "${p[resident]}" dirty "${p[dirty]}"
"""


def test_only_a_process_that_maps_jemalloc_gets_figures(tmp_path, on_jemalloc, sleeper):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for pid in (on_jemalloc, sleeper):
        write(metrics, pid, figures(pid, now(), dirty=None))
    with_jemalloc = script(PROC, INSPECT, str(on_jemalloc), str(metrics), str(now()))
    assert with_jemalloc.stdout == (f"mapped={tmp_path}/libjemalloc.so.2\nallocated={85 * MIB}\n"
                                    f"resident={120 * MIB}\ndirty=\n"), with_jemalloc.stderr
    without = script(PROC, INSPECT, str(sleeper), str(metrics), str(now()))
    assert without.stdout == "mapped=\nallocated=\nresident=\ndirty=\n", without.stderr


# What the figures say: render::memory, render::processes and render::json.

def rows(*processes: dict) -> str:
    """Bash that declares the processes assoc `rows` of PROCESSES (pid, comm, mapped, figures)."""
    keys = ["comm", "mapped", "rss", "error", "bg", "interval", "samples", "first_at", "first_allocated",
            "first_resident", "at", "allocated", "resident", "active", "retained", "dirty", "metadata",
            "peak_resident"]
    cells = [f"[count]={len(processes)}"]
    for i, process in enumerate(processes):
        cells.append(f"[{i},pid]={process['pid']}")
        cells += [f"[{i},{key}]='{process.get(key, '')}'" for key in keys]
    return f"declare -A rows=({' '.join(cells)})\n"


def process(pid: int = 1234, comm: str = "sidekiq", growth: int = 60 * MIB, live_growth: int = 55 * MIB,
            first_resident: int = 60 * MIB, first_allocated: int = 30 * MIB, **changes) -> dict:
    """A process on jemalloc whose resident and live data grew by GROWTH and LIVE_GROWTH in 35 min."""
    return {"pid": pid, "comm": comm, "mapped": "/app/vendor/jemalloc/lib/libjemalloc.so.2", "rss": 130000, "bg": "yes",
            "interval": 60, "samples": 35, "first_at": 1764650000, "at": 1764650000 + 35 * 60,
            "first_allocated": first_allocated, "first_resident": first_resident,
            "allocated": first_allocated + live_growth, "resident": first_resident + growth, "dirty": 12 * MIB,
            "retained": 40 * MIB, **changes}


MEMORY = 'declare -A f=(); render::memory rows 0 f; for k in "${!f[@]}"; do printf "%s=%s\\n" "$k" "${f[$k]}"; done'


def memory(entry: dict) -> dict[str, str]:
    done = script(RENDER, rows(entry) + MEMORY)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


@pytest.mark.parametrize(("first_resident", "growth", "live_growth", "verdict"), [
    # Growth counts from 8 MiB, or a tenth of the baseline when that is more.
    (50 * MIB, 8 * MIB - 1, 8 * MIB, "steady"),
    (50 * MIB, 8 * MIB, 4 * MIB, "live data"),
    (200 * MIB, 20 * MIB - 1, 20 * MIB, "steady"),
    (200 * MIB, 20 * MIB, 10 * MIB, "live data"),
    (200 * MIB + 9, 20 * MIB, 10 * MIB, "live data"),
    (200 * MIB + 10, 20 * MIB, 10 * MIB, "steady"),
    (50 * MIB, -30 * MIB, -30 * MIB, "steady"),
    # Live data when it makes at least half of the growth, overhead when less.
    (50 * MIB, 20 * MIB, 10 * MIB - 1, "overhead"),
    (50 * MIB, 20 * MIB + 1, 10 * MIB, "overhead"),
    (50 * MIB, 20 * MIB + 1, 10 * MIB + 1, "live data"),
    (50 * MIB, 20 * MIB, -5 * MIB, "overhead"),
    (50 * MIB, 20 * MIB, 30 * MIB, "live data"),
])
def test_the_verdict_at_its_edges(first_resident, growth, live_growth, verdict):
    # 4 MiB of overhead at the baseline: too little to be bloat on its own.
    said = memory(process(first_resident=first_resident, first_allocated=first_resident - 4 * MIB, growth=growth,
                          live_growth=live_growth))
    assert said["verdict"] == verdict, said
    assert (int(said["growth"]), int(said["live_growth"])) == (growth, live_growth)


@pytest.mark.parametrize(("allocated", "overhead", "verdict"), [
    # Without growth, overhead when it is at least the live data and at least 8 MiB.
    (20 * MIB, 20 * MIB, "overhead"),
    (20 * MIB, 20 * MIB - 1, "steady"),
    (4 * MIB, 8 * MIB, "overhead"),
    (4 * MIB, 8 * MIB - 1, "steady"),
    (100 * MIB, 60 * MIB, "steady"),
])
def test_without_growth_the_verdict_is_overhead_when_jemalloc_holds_as_much_as_the_app(allocated, overhead, verdict):
    said = memory(process(first_allocated=allocated, first_resident=allocated + overhead, growth=0, live_growth=0))
    assert said["verdict"] == verdict, said


def test_the_figures_of_the_verdict():
    said = memory(process())
    assert said == {"verdict": "live data", "live": str(85 * MIB), "overhead": str(35 * MIB), "growth": str(60 * MIB),
                    "live_growth": str(55 * MIB), "since": str(35 * 60), "samples": "35", "interval": "60",
                    "dirty": str(12 * MIB), "retained": str(40 * MIB), "advice": said["advice"]}
    # Resident may trail allocated, a clock set back may put the sample before the baseline: no negatives.
    odd = memory(process(growth=0, live_growth=40 * MIB, at=1764650000 - 60))
    assert (odd["overhead"], odd["since"]) == ("0", "0")
    assert memory(process(allocated="", resident="")) == {}


def processes_text(*entries: dict) -> str:
    answer = "declare -A answer=([reason]='off: not mapped in 1 of 3 processes')\n"
    done = script(RENDER, answer + rows(*entries) + "render::processes answer rows")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout


NO_FIGURES = ("memory: no figures yet (with JEMALLOC_METRICS=true a process publishes them one interval after it "
              "starts, 60 s by default; without it, set it and restart the dyno)")


def test_the_table_shows_live_and_resident_and_a_memory_line_for_each_process_with_figures():
    mib = 1024  # kB
    text = processes_text(process(), process(pid=56, comm="puma", allocated="", resident=""),
                          {"pid": 78, "comm": "bash", "rss": 3 * mib})
    assert text.splitlines() == [
        "jemalloc is off: not mapped in 1 of 3 processes",
        "  PID   JEMALLOC  BG THREAD  RSS       LIVE     RESIDENT  COMMAND  MAPPED",
        "  1234  yes       yes        126.9 MB  85.0 MB  120.0 MB  sidekiq  /app/vendor/jemalloc/lib/libjemalloc.so.2",
        "  56    yes       yes        126.9 MB  -        -         puma     /app/vendor/jemalloc/lib/libjemalloc.so.2",
        "  78    no        -          3.0 MB    -        -         bash     -",
        "memory 1234 (sidekiq): resident 120.0 MB = 85.0 MB live data + 35.0 MB jemalloc overhead; in the 35 min since "
        "its first sample, resident grew 60.0 MB and live data grew 55.0 MB; verdict: live data. The app holds more memory "
        "(a leak or a bigger working set), which no allocator setting gives back: profile the heap "
        "(JEMALLOC_PROFILING=true, then jeprof).",
    ]


def test_the_memory_line_of_overhead_tells_fragmentation_from_dirty_pages_and_of_steady_gives_figures_only():
    fragmented = processes_text(process(growth=60 * MIB, live_growth=-2 * MIB, comm="web\x1b[31m"))
    assert fragmented.splitlines()[-1] == (
        "memory 1234 (web?[31m): resident 120.0 MB = 28.0 MB live data + 92.0 MB jemalloc overhead; in the 35 min since "
        "its first sample, resident grew 60.0 MB and live data shrank 2.0 MB; verdict: overhead. jemalloc's pages are "
        "fragmented: most of them hold a few live objects each (only 12.0 MB dirty pages to return), so a decay "
        "setting will not help; long-lived objects allocated among short-lived ones do this, and restarting the "
        "worker, or keeping fewer of them, gives it back.")
    dirty = processes_text(process(growth=60 * MIB, live_growth=-2 * MIB, dirty=46 * MIB))
    assert dirty.splitlines()[-1].endswith(
        "verdict: overhead. jemalloc holds memory the app has freed (dirty pages 46.0 MB): return it sooner with "
        "heroku config:set MALLOC_CONF=dirty_decay_ms:250,muzzy_decay_ms:0")
    unknown = processes_text(process(growth=60 * MIB, live_growth=0, dirty=""))
    assert "verdict: overhead. jemalloc holds memory the app has freed: return it sooner with " in unknown
    steady = processes_text(process(growth=3 * MIB, live_growth=MIB, first_allocated=50 * MIB,
                                    first_at=1764650000 - 3 * 86400))
    assert steady.splitlines()[-1] == (
        "memory 1234 (sidekiq): resident 63.0 MB = 51.0 MB live data + 12.0 MB jemalloc overhead; in the 3 d 0 h since "
        "its first sample, resident grew 3.0 MB and live data grew 1.0 MB; verdict: steady.")


def test_without_any_figures_one_line_says_how_to_get_them_and_without_jemalloc_none():
    text = processes_text(process(allocated="", resident=""), {"pid": 78, "comm": "bash"})
    assert text.splitlines()[-1] == NO_FIGURES
    assert "memory" not in processes_text({"pid": 78, "comm": "bash"})


JSON = """declare -A answer=([active]=true [reason]='on: mapped in all 3 processes' [hint]='' [mode]=processes
	[library]=/app/vendor/jemalloc/lib/libjemalloc.so [library_exists]=false [library_file]='' [mapped]='' [bg]=''
	[version]='' [library_version]='' [process_type]='' [after_fork]=on)
declare -A build=(); build_keys=()
render::json answer rows build build_keys
"""


def test_json_gives_the_figures_and_the_verdict_of_each_process_or_nulls():
    done = script(RENDER, rows(process(), process(pid=56, growth=MIB, dirty="", retained=""),
                               process(pid=78, allocated="", resident="")) + JSON)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    first, steady, none = json.loads(done.stdout)["processes"]
    assert (first["allocated_bytes"], first["resident_bytes"], first["rss_kb"]) == (85 * MIB, 120 * MIB, 130000)
    assert first["memory"] == {
        "verdict": "live data", "live_bytes": 85 * MIB, "overhead_bytes": 35 * MIB, "growth_bytes": 60 * MIB,
        "live_growth_bytes": 55 * MIB, "since_seconds": 35 * 60, "samples": 35, "interval_seconds": 60,
        "dirty_bytes": 12 * MIB, "retained_bytes": 40 * MIB,
        "advice": "The app holds more memory (a leak or a bigger working set), which no allocator setting gives back: "
                  "profile the heap (JEMALLOC_PROFILING=true, then jeprof)."}
    assert steady["memory"]["verdict"] == "steady"
    assert (steady["memory"]["dirty_bytes"], steady["memory"]["retained_bytes"]) == (None, None)
    assert steady["memory"]["advice"]
    assert (none["allocated_bytes"], none["resident_bytes"], none["memory"]) == (None, None, None)
    assert none["jemalloc"] is True and none["comm"] == "sidekiq"


# The whole check, for a process on jemalloc that publishes nothing (none writes to
# /tmp/jemalloc-metrics here: the check reads that place, and no test writes there).

@pytest.fixture
def check(tmp_path):
    (tmp_path / "bin").mkdir()
    shutil.copytree(REPO / "runtime/lib", tmp_path / "libexec/jemalloc-buildpack")
    shutil.copy2(REPO / "runtime/bin/jemalloc-check", tmp_path / "bin/jemalloc-check")
    return tmp_path / "bin/jemalloc-check"


def test_the_check_shows_the_columns_and_says_how_to_get_figures(check, on_jemalloc, sleeper):
    environment = {"PATH": "/usr/bin:/bin"}
    text = subprocess.run([check, str(on_jemalloc), str(sleeper)], env=environment, capture_output=True, text=True,
                          timeout=30)
    assert (text.returncode, text.stderr) == (1, "")
    lines = text.stdout.splitlines()
    assert lines[1].split() == ["PID", "JEMALLOC", "BG", "THREAD", "RSS", "LIVE", "RESIDENT", "COMMAND", "MAPPED"]
    assert lines[2].split()[:2] == [str(on_jemalloc), "yes"] and lines[2].split()[5:7] == ["-", "-"]
    assert lines[4:] == [NO_FIGURES]
    data = subprocess.run([check, "--json", str(on_jemalloc)], env=environment, capture_output=True, text=True,
                          timeout=30)
    (entry,) = json.loads(data.stdout)["processes"]
    assert entry["jemalloc"] is True
    assert (entry["allocated_bytes"], entry["resident_bytes"], entry["memory"]) == (None, None, None)
