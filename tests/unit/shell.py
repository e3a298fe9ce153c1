"""Runs the buildpack's bash functions in a fresh bash on this machine."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from harness.paths import REPO


def script(sources: Sequence[str], text: str, *args: str, env: Mapping[str, str] | None = None,
           stdin: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    """Source SOURCES (paths relative to the repository), then run the bash TEXT with ARGS as
    its $1, $2... under `set -euo pipefail`, as bin/ does. The environment is ENV, plus a PATH."""
    program = "set -euo pipefail\n" + "".join(f'source "{REPO / source}"\n' for source in sources) + text + "\n"
    environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})}
    return subprocess.run(["bash", "-c", program, "unit", *args], input=stdin, env=environment,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def call(sources: Sequence[str], function: str, *args: str, **options) -> subprocess.CompletedProcess:
    """Source SOURCES, then run FUNCTION ARGS... (see script)."""
    return script(sources, '"$@"', function, *args, **options)
