"""What restarting jemalloc's background thread in forked children costs fork+exec: a bash loop of
500 external commands on the default build, with the restart (the default) and without
(JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false)."""

from __future__ import annotations

from pathlib import Path

from harness.app import App

from .results import ForkExecCost
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


def fork_exec_cost(app: App, slug: Path, rounds: int) -> ForkExecCost:
    """ROUNDS alternations of the loop in a one-off dyno of the default build."""
    script = f"set -- {rounds}\n{FORK_EXEC_SCRIPT}"
    result = app.run(slug, script, {"JEMALLOC_ENABLED": "true"}, process_type="run", timeout=900)
    if result.returncode != 0:
        raise RunError(f"the fork+exec measurement failed:\n{result.output[-2000:]}")
    cost = parse_fork_exec(result.stdout)
    if cost is None:
        raise RunError(f"the fork+exec measurement printed no times:\n{result.output[-2000:]}")
    return cost
