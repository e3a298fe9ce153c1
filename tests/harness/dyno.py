"""A booted dyno: a container of the stack's run image running the app's command.

Processes are inspected from inside the container through /proc (PIDs as `heroku ps:exec`
would show them): docker's init is PID 1, the dyno's own process is its child, and the
dyno's other processes descend from that. Processes started with `docker exec` (the
inspection itself) have parent 0 and are left out.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .docker import Result, docker, remove_container
from .parsers import CheckAnswer, parse_check
from .stacks import Stack

# What Heroku's dyno manager does before it runs a command (../shared/stacks/README.md).
LAUNCHER = r"""
for f in /app/.profile.d/*.sh; do
  if [ -r "$f" ]; then . "$f"; fi
done
unset f
if [ -r /app/.profile ]; then . /app/.profile; fi
exec bash -c "$1"
"""
# How `heroku ps:exec` runs a command in a dyno: the launcher above, the command its argument.
LOGIN = ("bash", "-c", LAUNCHER, "exec")


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    name: str


class Dyno:
    """A running container. LOGIN is how a command runs as the app's processes do (the
    launcher's argv, the command appended): Heroku's dyno launcher by default, the CNB
    launcher for a CNB app's container."""

    def __init__(self, container: str, stack: Stack, own_slug: Path | None = None, login: Sequence[str] = LOGIN):
        self.container = container
        self.stack = stack
        self._own_slug = own_slug
        self._login = tuple(login)

    def remove(self) -> None:
        """Remove the container, and the slug copy if it was made for this dyno alone."""
        remove_container(self.container)
        if self._own_slug is not None:
            shutil.rmtree(self._own_slug, ignore_errors=True)
            self._own_slug = None

    def logs(self) -> tuple[str, str]:
        result = docker("logs", self.container, timeout=30)
        return result.stdout, result.stderr

    def wait(self, timeout: float = 120) -> Result:
        """Wait for the dyno's command to end: its exit status and its output."""
        waited = docker("wait", self.container, timeout=timeout)
        stdout, stderr = self.logs()
        return Result(waited.args, int(waited.stdout.strip()), stdout, stderr)

    def wait_for_output(self, text: str, timeout: float = 60) -> str:
        """Wait until the dyno's stdout contains TEXT; return that stdout."""
        deadline = time.monotonic() + timeout
        while True:
            stdout, stderr = self.logs()
            if text in stdout:
                return stdout
            if not self.running():
                raise AssertionError(f"dyno exited before printing {text!r}:\nstdout: {stdout}\nstderr: {stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout}s:\nstdout: {stdout}\nstderr: {stderr}")
            time.sleep(0.2)

    def running(self) -> bool:
        result = docker("inspect", "--format", "{{.State.Running}}", self.container, check=False, timeout=30)
        return result.stdout.strip() == "true"

    def exec(self, command: str, login: bool = False, user: str | None = None, timeout: float = 60) -> Result:
        """Run COMMAND in the running dyno with bash -c; with login, through the launcher (after
        .profile.d on Heroku), like `heroku ps:exec`."""
        args = ["exec"]
        if user:
            args += ["--user", user]
        args += [self.container, *(self._login if login else ("bash", "-c")), command]
        return docker(*args, check=False, timeout=timeout)

    def check(self, *arguments: str | int) -> CheckAnswer:
        """`jemalloc-check --json ARGUMENTS...` run in the dyno as `heroku ps:exec` runs it: its
        JSON answer, with .returncode and .stderr."""
        result = self.exec(shlex.join(["jemalloc-check", "--json", *map(str, arguments)]), login=True)
        return parse_check(result.stdout, result.returncode, result.stderr)

    def processes(self) -> list[Process]:
        """The dyno's processes: descendants of the container's init, which is left out."""
        listing = self.exec('for s in /proc/[0-9]*/stat; do cat "$s" 2>/dev/null && echo; done').stdout
        table = {}
        for line in listing.splitlines():
            match = re.match(r"(\d+) \((.*)\) \S+ (\d+) ", line)
            if match:
                table[int(match[1])] = Process(int(match[1]), int(match[3]), match[2])
        members, frontier = [], [1]
        while frontier:
            parent = frontier.pop()
            children = [process for process in table.values() if process.ppid == parent]
            members += children
            frontier += [child.pid for child in children]
        return sorted(members, key=lambda process: process.pid)

    def main_process(self) -> Process:
        """The process that runs the dyno's command (the child of the container's init)."""
        mains = [process for process in self.processes() if process.ppid == 1]
        assert len(mains) == 1, f"expected one main process, found {mains}"
        return mains[0]

    def probe_processes(self) -> tuple[Process, Process]:
        """The sample app's bin/probe and its one child, a sleep: the dyno's two processes."""
        main = self.main_process()
        children = self.children(main)
        assert [child.name for child in children] == ["sleep"], children
        return main, children[0]

    def children(self, process: Process) -> list[Process]:
        return [candidate for candidate in self.processes() if candidate.ppid == process.pid]

    def maps(self, process: Process) -> str:
        result = self.exec(f"cat /proc/{process.pid}/maps")
        assert result.returncode == 0, f"cannot read /proc/{process.pid}/maps: {result.stderr}"
        return result.stdout

    def mapped_files(self, process: Process, pattern: str = "libjemalloc") -> set[str]:
        """Paths of the files mapped into the process whose name contains PATTERN."""
        paths = set()
        for line in self.maps(process).splitlines():
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and pattern in fields[5]:
                paths.add(fields[5].strip())
        return paths

    def environ(self, process: Process) -> dict[str, str]:
        result = self.exec(f"cat /proc/{process.pid}/environ")
        pairs = (entry.split("=", 1) for entry in result.stdout.split("\0") if "=" in entry)
        return dict(pairs)
