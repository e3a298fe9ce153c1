"""What a dyno uses, read every second from the host: the dyno's cgroup and /proc of its processes.

Reading from the host, not with `docker exec`, keeps the sampling out of the dyno's own memory
and CPU. A process's PSS (proportional set size) counts a page shared by N processes as 1/N in
each, so the PSS summed over a dyno counts each resident page once, as the dyno's memory quota
does; the RSS sum counts pages that forked workers share once per worker.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .configs import Config

CGROUP = "/sys/fs/cgroup"
# jemalloc (5.2 and later) names its background thread so.
BACKGROUND_THREAD = "jemalloc_bg_thd"
# How often (in samples) the threads of each process are listed again.
THREADS_EVERY = 10
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# Where a process on the buildpack's jemalloc publishes its allocator figures with
# JEMALLOC_METRICS on (src/metrics.c), named by its PID inside the dyno.
METRICS_DIRECTORY = "/tmp/jemalloc-metrics"
# A file whose latest sample is older than this is no running process's (the dynos sample at 1 s).
METRICS_MAX_AGE_SECONDS = 10


@dataclass
class ProcessRecord:
    """One process of the dyno, as seen over the run."""

    pid: int
    ppid: int
    comm: str
    cmdline: str
    mapped: list[str]
    background_thread: bool | None = None
    peak_pss: int = 0
    peak_rss: int = 0
    last_pss: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    # How many samples saw it: a command the app ran for a moment (say `uname`) is no worker.
    samples: int = 0
    # CPU time (user + system) when first seen and at the last sample: a worker that used none
    # in between was idle (say a pool child that no task reached).
    first_cpu_ms: int = 0
    cpu_ms: int = 0
    # jemalloc's own figures at the last sample (allocated: live data; resident: what it holds in
    # RAM), None for a process that publishes none (glibc, or JEMALLOC_METRICS off).
    allocated: int | None = None
    resident: int | None = None
    # The environment it was started with (/proc/PID/environ).
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class Sample:
    time: float
    pss: int
    rss: int
    cpu_ns: int
    # PSS per PID.
    processes: dict[int, int] = field(default_factory=dict)
    # jemalloc's figures summed over the processes that publish them; None when none does.
    allocated: int | None = None
    resident: int | None = None


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return file.read().decode("utf-8", "replace")
    except OSError:
        return None


# /proc/PID/stat states of a process that has exited (zombie) or is being reaped.
EXITED_STATES = ("Z", "X", "x")


def _stat_fields(stat: str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parens):
    [0] is the stat file's field 3 (state), [1] field 4 (ppid), [11] and [12] fields 14 and 15."""
    return stat[stat.rindex(")") + 2:].split()


def _cpu_ms(stat: str | None) -> int | None:
    """User + system CPU time, in ms, from the text of /proc/PID/stat."""
    if stat is None or ")" not in stat:
        return None
    fields = _stat_fields(stat)
    return (int(fields[11]) + int(fields[12])) * 1000 // CLOCK_TICKS_PER_SECOND


def allocator_figures(pid: int, now: float) -> tuple[int, int] | None:
    """(allocated, resident) that host process PID published last (src/metrics.c's file, read
    through the process's own root, under its PID inside the dyno), or None."""
    namespace_pid = None
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("NSpid:"):
            namespace_pid = line.split()[-1]
    if namespace_pid is None:
        return None
    text = _read(f"/proc/{pid}/root{METRICS_DIRECTORY}/{namespace_pid}")
    if text is None:
        return None
    figures = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    try:
        if figures["pid"] != namespace_pid or now - int(figures["at"]) > METRICS_MAX_AGE_SECONDS:
            return None
        return int(figures["allocated"]), int(figures["resident"])
    except (KeyError, ValueError):
        return None


def cgroup_dir(controller: str, pid: int) -> str:
    """The cgroup (v1) directory of process PID for CONTROLLER, as the host sees it."""
    for line in (_read(f"/proc/{pid}/cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            directory = f"{CGROUP}/{controller}{path}"
            if os.path.isdir(directory):
                return directory
    raise RuntimeError(f"no {controller} cgroup (v1) for process {pid} under {CGROUP}")


class DynoSampler:
    """Samples one dyno container; `sample()` once a second."""

    def __init__(self, init_pid: int):
        """INIT_PID: the host PID of the container's init (docker inspect's State.Pid)."""
        self.memory_cgroup = cgroup_dir("memory", init_pid)
        self.cpu_cgroup = cgroup_dir("cpuacct", init_pid)
        self.processes: dict[int, ProcessRecord] = {}
        self.samples: list[Sample] = []
        self._count = 0

    def pids(self) -> list[int]:
        text = _read(f"{self.memory_cgroup}/cgroup.procs") or ""
        return [int(pid) for pid in text.split()]

    def sample(self) -> Sample | None:
        now = time.time()
        cpu = _read(f"{self.cpu_cgroup}/cpuacct.usage")
        pss_total = rss_total = 0
        allocated_total = resident_total = None
        per_process = {}
        self._count += 1
        for pid in self.pids():
            record = self.processes.get(pid) or self._discover(pid, now)
            if record is None:
                continue
            rollup = _read(f"/proc/{pid}/smaps_rollup")
            if rollup is None:
                continue
            rss = pss = 0
            for line in rollup.splitlines():
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
            record.last_seen = now
            record.samples += 1
            cpu_ms = _cpu_ms(_read(f"/proc/{pid}/stat"))
            if cpu_ms is not None:
                record.cpu_ms = cpu_ms
            record.last_pss = pss
            record.peak_pss = max(record.peak_pss, pss)
            record.peak_rss = max(record.peak_rss, rss)
            if self._count % THREADS_EVERY == 0 or record.background_thread is None:
                # A process found while it was still the launcher's bash has exec'd since.
                self._refresh(record)
                record.background_thread = self._has_background_thread(pid)
            pss_total += pss
            rss_total += rss
            per_process[pid] = pss
            figures = allocator_figures(pid, now) if record.mapped else None
            record.allocated, record.resident = figures or (None, None)
            if figures is not None:
                allocated_total = (allocated_total or 0) + figures[0]
                resident_total = (resident_total or 0) + figures[1]
        if cpu is None:
            return None
        sample = Sample(now, pss_total, rss_total, int(cpu), per_process, allocated_total, resident_total)
        self.samples.append(sample)
        return sample

    def _discover(self, pid: int, now: float) -> ProcessRecord | None:
        stat = _read(f"/proc/{pid}/stat")
        cmdline = _read(f"/proc/{pid}/cmdline")
        maps = _read(f"/proc/{pid}/maps")
        if stat is None or cmdline is None or maps is None:
            return None
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm == "docker-init":
            # The container's init: Heroku's dyno has its own, outside the app's memory.
            return None
        fields = _stat_fields(stat)
        if fields[0] in EXITED_STATES or not maps:
            # Exiting: its memory, command line and environment are gone, and the record kept
            # from when it ran is the one to judge it by.
            return None
        ppid = int(fields[1])
        mapped = sorted({line.split(maxsplit=5)[5] for line in maps.splitlines()
                         if len(line.split(maxsplit=5)) == 6 and "libjemalloc" in line})
        cpu_ms = _cpu_ms(stat) or 0
        environment = dict(entry.split("=", 1) for entry in (_read(f"/proc/{pid}/environ") or "").split("\0")
                           if "=" in entry)
        record = ProcessRecord(pid, ppid, comm, cmdline.replace("\0", " ").strip(), mapped, first_seen=now,
                               first_cpu_ms=cpu_ms, cpu_ms=cpu_ms, environment=environment)
        self.processes[pid] = record
        return record

    def _refresh(self, record: ProcessRecord) -> None:
        fresh = self._discover(record.pid, record.first_seen)
        if fresh is not None:
            fresh.peak_pss, fresh.peak_rss, fresh.last_pss = record.peak_pss, record.peak_rss, record.last_pss
            fresh.last_seen, fresh.samples = record.last_seen, record.samples
            fresh.first_cpu_ms = record.first_cpu_ms
            fresh.allocated, fresh.resident = record.allocated, record.resident
            record.__dict__.update(fresh.__dict__)
            self.processes[record.pid] = record

    @staticmethod
    def _has_background_thread(pid: int) -> bool:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return False
        return any((_read(f"/proc/{pid}/task/{task}/comm") or "").strip() == BACKGROUND_THREAD for task in tasks)

    def allocator_problems(self, config: Config) -> list[str]:
        """Processes whose allocator is not CONFIG's: the jemalloc it preloads (the slug's, the
        stack's) or none, and its config vars (say PYTHONMALLOC) in the process's environment."""
        problems = []
        expected = config.mapped_libraries
        for record in self.processes.values():
            if record.mapped != expected:
                problems.append(f"PID {record.pid} ({record.cmdline[:60]}) maps {record.mapped or 'no jemalloc'}, "
                                f"expected {expected or 'no jemalloc'}")
            for name, value in config.env.items():
                if record.environment.get(name) != value:
                    problems.append(f"PID {record.pid} ({record.cmdline[:60]}) runs with {name}="
                                    f"{record.environment.get(name, '(unset)')!r}, expected {value!r}")
        return problems
