"""benchmarks/realapp/side-by-side: how the soak benchmark runs several copies of a one-process
server (Sidekiq, Celery's threads pool) in one dyno."""

from __future__ import annotations

import os
import subprocess
import time

from harness.paths import REPO

SIDE_BY_SIDE = str(REPO / "benchmarks" / "realapp" / "side-by-side")


def run(command: list[str], processes: str | None, timeout: float = 20) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"]}
    if processes is not None:
        env["WORKER_PROCESSES"] = processes
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_one_copy_is_the_command_itself():
    # exec'd: the command has the launcher's PID, so the dyno's process tree is the plain command's.
    completed = run(["bash", "-c", f'echo $$; exec {SIDE_BY_SIDE} bash -c "echo \\$\\$"'], None)
    first, second = completed.stdout.split()
    assert completed.returncode == 0 and first == second


def test_each_copy_runs_and_the_first_to_exit_stops_the_others_with_its_status(tmp_path):
    started = time.monotonic()
    # Each copy leaves a file; the one that makes the directory first exits once all three are up,
    # the others would sleep for 30 s.
    script = ('touch "$0-$$"; mkdir "$0" 2>/dev/null || exec sleep 30; '
              'until [ "$(ls -d "$0"-* | wc -l)" -ge 3 ]; do sleep 0.05; done; exit 3')
    completed = run([SIDE_BY_SIDE, "bash", "-c", script, str(tmp_path / "copy")], "3")
    assert len(list(tmp_path.glob("copy-*"))) == 3
    assert completed.returncode == 3
    assert time.monotonic() - started < 15, "the copies still sleeping were not stopped"


def test_a_count_that_is_not_a_whole_number_is_an_error_that_says_so():
    for wrong in ("0", "two", "-1", "1.5"):
        completed = run([SIDE_BY_SIDE, "true"], wrong)
        assert completed.returncode == 2, wrong
        assert f"WORKER_PROCESSES='{wrong}' is not a whole number" in completed.stderr
