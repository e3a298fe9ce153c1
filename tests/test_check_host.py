"""jemalloc-check on the host, without Docker, about real processes of this machine that are hard
to make in a dyno: one with some 10,000 memory mappings, and ones whose names, paths and
environment hold bytes that are not text (control characters, the separators a renderer might
use, bytes that are not UTF-8).

jemalloc-check runs from its runtime laid out as lib/install.sh installs it (bin/ beside
libexec/jemalloc-buildpack/). The library is a stand-in, a copy of this machine's libz named
libjemalloc.so.2, loaded with ctypes, so that what jemalloc-check reads in /proc is true, not
faked. BUILDPACK_UNDER_TEST=<dir> runs the tests against another checkout's runtime/.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.parsers import parse_check, well_formed_utf8
from harness.paths import REPO, lay_out_runtime

BUILDPACK = Path(os.environ.get("BUILDPACK_UNDER_TEST", REPO))
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Far above what a linear check takes (well under a second here); enough that the quadratic one
# (10 s at 1,139 lines, minutes at 10,000) fails instead of hanging the tier.
CHECK_TIMEOUT = 120
MAPPINGS = 10_000


def stand_in_library() -> str:
    found = sorted(glob.glob("/usr/lib/*/libz.so.1") + glob.glob("/lib/*/libz.so.1") + glob.glob("/usr/lib*/libz.so.1"))
    if not found:
        pytest.skip("no libz.so.1 on this machine to stand in for libjemalloc.so")
    return found[0]


@pytest.fixture
def check(tmp_path) -> Path:
    """jemalloc-check, laid out as lib/install.sh installs it in vendor/jemalloc."""
    return lay_out_runtime(BUILDPACK, tmp_path / "vendor-jemalloc") / "jemalloc-check"


# A Python process that loads the library at LIBRARY (bytes, as the file system has it), sets its
# own name to NAME (bytes, at most 15) unless empty, maps COUNT pages one by one with alternating
# protections (so that the kernel cannot merge them into one mapping), says how many lines its
# /proc/self/maps has, and waits for its stdin to close.
PROCESS = r"""
import ctypes, mmap, os, sys
library, name, count = os.fsdecode(bytes.fromhex(sys.argv[1])), bytes.fromhex(sys.argv[2]), int(sys.argv[3])
ctypes.CDLL(library)
if name:
    with open("/proc/self/comm", "wb") as comm:
        comm.write(name)
pages = [mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                   prot=mmap.PROT_READ if i % 2 else mmap.PROT_READ | mmap.PROT_WRITE) for i in range(count)]
with open("/proc/self/maps", "rb") as maps:
    print(len(maps.read().splitlines()), flush=True)
sys.stdin.read()
"""


class Process:
    def __init__(self, library: bytes, name: bytes = b"", mappings: int = 0):
        self.popen = subprocess.Popen([sys.executable, "-c", PROCESS, library.hex(), name.hex(), str(mappings)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.popen.pid
        self.map_lines = int(self.popen.stdout.readline())

    def maps(self) -> list[bytes]:
        return Path(f"/proc/{self.pid}/maps").read_bytes().splitlines()

    def stop(self) -> None:
        self.popen.stdin.close()
        self.popen.wait(timeout=30)


def library_at(directory: Path, name: bytes = b"libjemalloc.so.2") -> bytes:
    """A copy of the stand-in library at DIRECTORY/NAME (bytes)."""
    os.makedirs(bytes(directory), exist_ok=True)
    path = bytes(directory) + b"/" + name
    shutil.copy(stand_in_library(), path)
    return path


def run_check(check: Path, *arguments: str, env: dict[bytes, bytes] | None = None) -> subprocess.CompletedProcess:
    environment = {b"PATH": BASE_PATH.encode(), b"LANG": b"C.UTF-8", b"LC_ALL": b"C.UTF-8", **(env or {})}
    return subprocess.run(["bash", str(check), *arguments], env=environment, capture_output=True, timeout=CHECK_TIMEOUT)


def text_rows(stdout: bytes) -> dict[int, list[str]]:
    """The table of jemalloc-check's text for processes, by PID: the columns of each row. The text
    must be UTF-8, and hold no control character but the newlines that end its lines."""
    text = stdout.decode("utf-8")
    assert not [char for char in text if ord(char) < 0x20 and char != "\n"], text
    lines = text.splitlines()
    assert lines[1].split() == ["PID", "JEMALLOC", "BG", "THREAD", "RSS", "LIVE", "RESIDENT", "COMMAND", "MAPPED"], text
    rows: dict[int, list[str]] = {}
    # The table's rows are indented; the memory lines after it are not.
    for line in (line for line in lines[2:] if line.startswith(" ")):
        columns = line.split()
        assert columns[0].isdigit() and int(columns[0]) not in rows, text
        rows[int(columns[0])] = columns
    return rows


# --- a process with 10,000 mappings ----------------------------------------------------------

def test_a_process_with_ten_thousand_mappings_is_checked_and_its_library_found(check, tmp_path):
    library = library_at(tmp_path)
    process = Process(library, mappings=MAPPINGS)
    try:
        assert process.map_lines > MAPPINGS
        maps = process.maps()
        first = next(index for index, line in enumerate(maps) if b"libjemalloc" in line)
        print(f"{len(maps)} map lines, the library's first at line {first + 1}")
        for arguments in ([str(process.pid)], ["--json", str(process.pid)]):
            started = time.monotonic()
            done = run_check(check, *arguments)
            print(f"jemalloc-check {' '.join(arguments)}: {time.monotonic() - started:.2f} s")
            assert done.returncode == 0, done.stderr
            if "--json" in arguments:
                data = parse_check(done.stdout.decode("utf-8"), done.returncode, done.stderr.decode())
                (entry,) = data["processes"]
                assert (entry["pid"], entry["jemalloc"], entry["mapped"]) == (process.pid, True, library.decode())
                assert data["reason"] == f"on: mapped in process {process.pid}"
            else:
                assert done.stdout.decode().splitlines()[0] == f"jemalloc is on: mapped in process {process.pid}"
                columns = text_rows(done.stdout)[process.pid]
                assert (columns[1], columns[-1]) == ("yes", library.decode())
    finally:
        process.stop()


# --- names, paths and values that are not text -----------------------------------------------

# Every byte a renderer could trip on: its own separators (0x1f, 0x1e), a tab, bytes that are not
# UTF-8, a quote and a backslash. 15 bytes, as many as the kernel keeps.
ODD_NAME = b'a\x1fb\x1ec\td\xff\xfe"q\\z\x1b!'
# A name that ends inside a UTF-8 sequence: bash's read, in a UTF-8 locale, takes the newline after
# it into the name.
CUT_NAME = b"cut\xe2\x82"
# The library's directory: a newline (which /proc/PID/maps shows as \012), a tab, 0x1f, bytes that
# are not UTF-8 and an escape sequence.
ODD_DIRECTORY = b"lib\nnew\tline\x1fsep\xff\xc3\x1b[31m"


def as_text(value: bytes) -> str:
    """VALUE as jemalloc-check's text shows it: control characters and bytes that are not UTF-8 are '?'."""
    return "".join("?" if ord(char) < 0x20 or 0x7f <= ord(char) <= 0x9f else char for char in well_formed_utf8(value, "?"))


def test_processes_with_odd_names_and_paths_get_one_row_each_in_text_and_json(check, tmp_path):
    odd_library = library_at(tmp_path / os.fsdecode(ODD_DIRECTORY))
    mapped = odd_library.replace(b"\n", b"\\012")
    processes = [Process(odd_library, ODD_NAME), Process(library_at(tmp_path), CUT_NAME),
                 Process(library_at(tmp_path), b"plain")]
    odd, cut, plain = processes
    try:
        for arguments in ([], ["--all"]):
            pids = [str(process.pid) for process in processes] if not arguments else []
            done = run_check(check, *arguments, *pids)
            rows = text_rows(done.stdout)
            assert rows[odd.pid][1:3] == ["yes", "no"]
            assert rows[odd.pid][-2:] == [as_text(ODD_NAME), as_text(mapped)]
            assert rows[cut.pid][-2] == as_text(CUT_NAME) == "cut??"
            assert rows[plain.pid][-2:] == ["plain", str(tmp_path / "libjemalloc.so.2")]
            if not arguments:
                assert list(rows) == [process.pid for process in processes]

            done = run_check(check, "--json", *arguments, *pids)
            data = parse_check(done.stdout.decode("utf-8"), done.returncode, done.stderr.decode())
            entries = {entry["pid"]: entry for entry in data["processes"]}
            assert len(entries) == len(data["processes"])
            assert entries[odd.pid]["comm"] == well_formed_utf8(ODD_NAME)
            assert entries[odd.pid]["mapped"] == well_formed_utf8(mapped)
            assert entries[cut.pid]["comm"] == "cut\ufffd\ufffd"
            assert entries[plain.pid] == {"pid": plain.pid, "exists": True, "comm": "plain", "jemalloc": True,
                                          "mapped": str(tmp_path / "libjemalloc.so.2"), "background_thread": False,
                                          "rss_kb": entries[plain.pid]["rss_kb"], "allocated_bytes": None,
                                          "resident_bytes": None, "memory": None, "error": None}
            assert entries[plain.pid]["rss_kb"] > 0
    finally:
        for process in processes:
            process.stop()


ODD_VALUES = {
    b"JEMALLOC_ENABLED": b"tr\nue\x1f\xff",
    b"JEMALLOC_PROCESS_TYPES": b"web\tworker\x1e",
    b"JEMALLOC_BACKGROUND_THREAD_AFTER_FORK": b"of\x1b[2Jf\xc3",
    b"DYNO": b"w\xe9b.1",
    b"MALLOC_CONF": b"narenas:1\r\x7f'",
    b"MALLOC_ARENA_MAX": b"2\xc2\x9b",
}


def test_the_shells_answer_keeps_one_line_per_fact_and_valid_json_whatever_the_environment(check):
    done = run_check(check, env=dict(ODD_VALUES))
    text = done.stdout.decode("utf-8")
    assert not [char for char in text if ord(char) < 0x20 and char != "\n" or 0x7f <= ord(char) <= 0x9f], text
    lines = text.splitlines()
    assert lines[0].startswith("jemalloc is off: JEMALLOC_ENABLED='tr?ue??' is not understood"), text
    labels = [line.split()[0] for line in lines[1:]]
    assert labels == ["library", "mapped", "after-fork", "LD_PRELOAD", "settings", "hint"], text
    assert "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK='of?[2Jf?' is not understood" in lines[3]

    done = run_check(check, "--json", env=dict(ODD_VALUES))
    data = parse_check(done.stdout.decode("utf-8"), done.returncode, done.stderr.decode())
    assert data["settings"] == {**{name.decode(): well_formed_utf8(value) for name, value in ODD_VALUES.items()},
                                "process_type": "w\ufffdb", "background_thread_after_fork": "invalid"}
    enabled = well_formed_utf8(ODD_VALUES[b"JEMALLOC_ENABLED"])
    assert data["reason"] == f"off: JEMALLOC_ENABLED='{enabled}' is not understood"
