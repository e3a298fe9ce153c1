"""Runs one function of the buildpack's bash code in a fresh bash on this machine."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from harness.paths import REPO


def call(sources: Sequence[str], command: str, *args: str, env: Mapping[str, str] | None = None,
         stdin: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    """Source SOURCES (paths relative to the repository), then run COMMAND with ARGS under
    `set -euo pipefail`, as bin/ does. The environment is ENV alone, plus a PATH."""
    script = "set -euo pipefail\n" + "".join(f'source "{REPO / source}"\n' for source in sources) + '"$@"\n'
    environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})}
    return subprocess.run(["bash", "-c", script, "unit", command, *args], input=stdin, env=environment,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
