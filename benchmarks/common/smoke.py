"""The benchmark as its smoke tests run it (tests/test_soak.py, tests/test_soak_fit.py): on a
preferred stack when it is among the selected ones, else on the first, in a subprocess started
as benchmarks/run starts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.paths import REPO
from harness.stacks import selected_stacks

# What benchmarks/run puts on the path: the harness, and benchmarks/.
PYTHONPATH = f"{REPO / 'tests'}:{REPO / 'benchmarks'}"


def smoke_stack(option: str, preferred: str = "heroku-24") -> str:
    """The stack to run a benchmark's smoke size on, of those --stack OPTION selects: PREFERRED
    when it is among them, else the first."""
    names = [stack.name for stack in selected_stacks(option)]
    return preferred if preferred in names else names[0]


def run_benchmark(stack: str, args: list[str], output_dir: Path, timeout: float) -> subprocess.CompletedProcess:
    """`python -m soak --stack STACK ARGS --output-dir OUTPUT_DIR`."""
    return subprocess.run(
        [sys.executable, "-m", "soak", "--stack", stack, *args, "--output-dir", str(output_dir)],
        env={**os.environ, "PYTHONPATH": PYTHONPATH}, capture_output=True, text=True, timeout=timeout,
    )
