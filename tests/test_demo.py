"""The README's main command, the demo, shows jemalloc active in a dyno (run as a user would)."""

import os
import subprocess
import sys

from harness.paths import REPO
from harness.stacks import selected_stacks


def test_the_demo_builds_the_sample_app_and_shows_jemalloc_active(request):
    names = [stack.name for stack in selected_stacks(request.config.getoption("--stack"))]
    stack = "heroku-24" if "heroku-24" in names else names[0]
    completed = subprocess.run(
        [sys.executable, "-m", "harness", "demo", "--stack", stack],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
        capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "-----> Installed to vendor/jemalloc" in completed.stdout
    assert "jemalloc is on: mapped in all 2 processes" in completed.stdout
    assert completed.stdout.rstrip().endswith("jemalloc is active in the dyno.")
