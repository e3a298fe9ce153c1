"""What restarting jemalloc's background thread in forked children costs, on the default build,
with the restart (the default) and without (JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false):

- fork+exec: a bash loop of 500 external commands;
- fork without exec: the work a child does right after its fork, the window in which the
  restart is still pending: C's malloc and free (tests/programs/fork_probe.c), and Ruby's and
  Python's objects, the stack's own interpreters (Ubuntu's, in the soak image).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from harness import programs
from harness.app import App

from .results import AfterForkCost, ForkExecCost
from .runner import RunError

# Each measurement is a fresh bash, which reads JEMALLOC_BACKGROUND_THREAD_AFTER_FORK when
# jemalloc starts in it; the two kinds alternate so that the machine's noise hits both. Each
# prints its wall time (microseconds) and `times` (CPU time of the shell and its commands).
FORK_EXEC_SCRIPT = r"""
loop() {
  s=$(date +%s%N); for i in $(seq 500); do /bin/true; done; e=$(date +%s%N)
  times >"/tmp/times.$$"
  echo "$(( (e - s) / 1000 )) $(tr '\n' ' ' <"/tmp/times.$$")"
}
export -f loop
for round in $(seq "$1"); do
  echo "restart $(bash -c loop)"
  echo "no-restart $(JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false bash -c loop)"
done
"""

# The work of each child after its fork, sized for 0.2-0.4 s of CPU a child (heroku-24, 2
# CPUs): the first 200 ms after a fork are where the helper's pending restart could slow a
# child down, and a longer run would dilute what it costs there.
C_OPERATIONS = 25_000_000
RUBY_ITERATIONS = 100_000
PYTHON_ITERATIONS = 250_000
# Per language, what its child does (the results keep it, and the lines show it).
AFTER_FORK_WORK = {
    "c": f"{C_OPERATIONS:,} malloc/free pairs of 48-144 bytes",
    "ruby": f"{RUBY_ITERATIONS:,} rounds of a 20-byte string, a 2 KB one, an array, their join and a hash",
    "python": f"{PYTHON_ITERATIONS:,} rounds of a 15-byte string, a 1.5 KB one, a list, their join and a dict",
}

# The Ruby and Python programs: the parent makes sure jemalloc is in it (the figure means
# nothing without it), forks one child that does ITERATIONS (its argument) of work at once and
# prints its own wall and CPU time, and exits with the child's status. The CPU time is the
# whole child's, the background thread's included: the thread is part of what the restart costs.
# The long strings and their joins are above what Ruby's object slots and Python's small-object
# allocator hold, so they go to malloc.
RUBY_CHILD = r"""
$stdout.sync = true
abort "jemalloc is not preloaded" unless File.read("/proc/self/maps").include?("libjemalloc")
iterations = Integer(ARGV[0])
pid = fork do
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  cpu_started = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  iterations.times do |i|
    word = "x#{i}" * 3
    row = [word, word * 100, i]
    { id: i, row: row, text: row.join(",") }
  end
  puts format("ms=%.3f cpu_ms=%.3f", (Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000,
              (Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - cpu_started) * 1000)
end
Process.wait(pid)
exit($?.exitstatus)
"""
PYTHON_CHILD = r"""
import os, sys, time
if "libjemalloc" not in open("/proc/self/maps").read():
    sys.exit("jemalloc is not preloaded")
iterations = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(iterations):
        word = str(i) * 3
        row = [word, word * 100, str(i)]
        record = {"id": i, "row": row, "text": ",".join(row)}
    print("ms=%.3f cpu_ms=%.3f" % ((time.perf_counter() - started) * 1000, (time.process_time() - cpu_started) * 1000),
          flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(0 if status == 0 else 1)
"""

# Each measurement is a fresh process, which reads the switch as jemalloc starts in it, and
# forks one child; each prints "LANGUAGE KIND" and the child's times. C: the count, the probe's
# "ns_per_op=..." (its child's wall time per pair), and the CPU time of the probe's two
# processes from bash's `time` (the probe only prints wall time; its parent only waits);
# Ruby and Python: "ms=... cpu_ms=...". Any failure ends the script, its message on stderr.
AFTER_FORK_SCRIPT = r"""
set -eu
TIMEFORMAT='user=%3U sys=%3S'
# KIND COMMAND...: COMMAND with the background thread restart (the default) or without it.
as_kind() {
  kind=$1
  shift
  if [ "$kind" = restart ]; then "$@"; else JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false "$@"; fi
}
measure() {
  case $1 in
    c)
      # `time` writes to the group's stderr, here captured; the probe's own stderr stays stderr.
      report=$({ time as_kind "$2" "$PROBE" work "$C_OPERATIONS" 2>&3; } 3>&2 2>&1)
      report="$C_OPERATIONS ${report//$'\n'/ }"
      ;;
    ruby) report=$(as_kind "$2" ruby -e "$RUBY_CHILD" "$RUBY_ITERATIONS") ;;
    python) report=$(as_kind "$2" python3 -c "$PYTHON_CHILD" "$PYTHON_ITERATIONS") ;;
  esac
  echo "$1 $2 $report"
}
for round in $(seq "$ROUNDS"); do
  # A round starts with the kind the one before ended with, so that a drift of the machine's
  # speed within a round hits both kinds alike.
  if [ $((round % 2)) = 1 ]; then kinds="restart no-restart"; else kinds="no-restart restart"; fi
  for language in c ruby python; do
    for kind in $kinds; do
      measure "$language" "$kind"
    done
  done
done
"""
# Where the after-fork dyno has tests/programs/fork_probe.c built for its stack.
PROBE = f"{programs.MOUNT}/fork_probe"
# LANGUAGE KIND, then C's count, nanoseconds per pair and CPU seconds, or Ruby's and Python's
# wall and CPU milliseconds.
AFTER_FORK_LINE = re.compile(r"(c|ruby|python) (restart|no-restart) (?:(\d+) ns_per_op=([\d.]+) user=([\d.]+) "
                             r"sys=([\d.]+)|ms=([\d.]+) cpu_ms=([\d.]+))")


def _seconds(text: str) -> float:
    """Seconds from bash's `times` (0m1.250s)."""
    minutes, _, seconds = text.rstrip("s").partition("m")
    return int(minutes) * 60 + float(seconds)


def parse_fork_exec(stdout: str) -> ForkExecCost | None:
    """The measurements the script printed; None when it printed none of either kind."""
    wall: dict[str, list[float]] = {"restart": [], "no-restart": []}
    cpu: dict[str, list[float]] = {"restart": [], "no-restart": []}
    for line in stdout.splitlines():
        fields = line.split()
        # name, wall microseconds, then `times`: shell user, shell sys, children user, children sys.
        if len(fields) == 6 and fields[0] in wall:
            wall[fields[0]].append(int(fields[1]) / 1e6)
            cpu[fields[0]].append(sum(_seconds(field) for field in fields[2:]))
    if not all(wall.values()):
        return None
    return ForkExecCost(wall, cpu)


def _measure(app: App, slug: Path, script: str, parse, what: str, docker_options: tuple[str, ...] = ()):
    """SCRIPT in a one-off dyno of the default build with jemalloc on, its output PARSEd; a
    RunError naming WHAT when it fails or prints nothing PARSE takes."""
    result = app.run(slug, script, {"JEMALLOC_ENABLED": "true"}, process_type="run", timeout=900,
                     docker_options=docker_options)
    if result.returncode != 0:
        raise RunError(f"the {what} measurement failed:\n{result.output[-2000:]}")
    cost = parse(result.stdout)
    if cost is None:
        raise RunError(f"the {what} measurement printed no times:\n{result.output[-2000:]}")
    return cost


def fork_exec_cost(app: App, slug: Path, rounds: int) -> ForkExecCost:
    """ROUNDS alternations of the loop in a one-off dyno of the default build."""
    return _measure(app, slug, f"set -- {rounds}\n{FORK_EXEC_SCRIPT}", parse_fork_exec, "fork+exec")


def after_fork_script(rounds: int, probe: str = PROBE) -> str:
    """AFTER_FORK_SCRIPT for ROUNDS alternations, its programs and sizes set before it."""
    settings = {
        "ROUNDS": rounds,
        "PROBE": probe,
        "C_OPERATIONS": C_OPERATIONS,
        "RUBY_ITERATIONS": RUBY_ITERATIONS,
        "PYTHON_ITERATIONS": PYTHON_ITERATIONS,
        "RUBY_CHILD": RUBY_CHILD,
        "PYTHON_CHILD": PYTHON_CHILD,
    }
    return "".join(f"{name}={shlex.quote(str(value))}\n" for name, value in settings.items()) + AFTER_FORK_SCRIPT


def parse_after_fork(stdout: str) -> AfterForkCost | None:
    """The children's times the after-fork script printed; None when a language of
    AFTER_FORK_WORK printed none of either kind."""
    wall = {language: {"restart": [], "no-restart": []} for language in AFTER_FORK_WORK}
    cpu = {language: {"restart": [], "no-restart": []} for language in AFTER_FORK_WORK}
    for line in stdout.splitlines():
        match = AFTER_FORK_LINE.fullmatch(line.strip())
        if match is None:
            continue
        language, kind, operations, ns_per_op, user, system, milliseconds, cpu_milliseconds = match.groups()
        if operations is not None:
            wall[language][kind].append(int(operations) * float(ns_per_op) / 1e9)
            cpu[language][kind].append(float(user) + float(system))
        else:
            wall[language][kind].append(float(milliseconds) / 1e3)
            cpu[language][kind].append(float(cpu_milliseconds) / 1e3)
    if not all(times for kinds in wall.values() for times in kinds.values()):
        return None
    return AfterForkCost(wall, cpu, dict(AFTER_FORK_WORK))


def after_fork_cost(app: App, slug: Path, rounds: int) -> AfterForkCost:
    """ROUNDS alternations of the children's work after fork, in a one-off dyno of the default
    build with the stack's fork_probe mounted."""
    probe = programs.build(app.stack_images, "fork_probe")
    return _measure(app, slug, after_fork_script(rounds), parse_after_fork, "after-fork",
                    programs.dyno_options(probe))
