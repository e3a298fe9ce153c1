"""The benchmark's command line: its options, the command recorded with the results, the machine
and clock of a run, and the loop over the stacks."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from harness import images
from harness.paths import DEFAULT_VERSION, FIXTURE_TARBALLS
from harness.docker import DockerError
from harness.paths import REPO
from harness.stacks import Stack, selected_stacks
from stack_image import ImageError

from .errors import BenchmarkError

DEFAULT_OUTPUT = REPO / "benchmark-results"
Result = TypeVar("Result")


def say(message: str = "") -> None:
    print(message, flush=True)


def add_stack_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default="heroku-24", help="comma-separated stacks, or 'all' (default: heroku-24)")


def add_malloc_conf_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--malloc-conf", action="append", default=[], metavar="CONF", help=help)


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """--version and --output-dir."""
    parser.add_argument("--version", default=DEFAULT_VERSION, choices=sorted(FIXTURE_TARBALLS),
                        help=f"JEMALLOC_VERSION, built from the offline fixtures (default {DEFAULT_VERSION})")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)


def command_line(prog: str, argv: list[str] | None) -> str:
    """The command as the user typed it (ARGV, else this process's arguments), for the results."""
    return prog + "".join(f" {shlex.quote(arg)}" for arg in (sys.argv[1:] if argv is None else argv))


@dataclass(frozen=True)
class Machine:
    cpus: int | None
    platform: str

    @classmethod
    def here(cls) -> Machine:
        return cls(os.cpu_count(), platform.platform())

    def to_json(self) -> dict:
        return {"cpus": self.cpus, "platform": self.platform}

    @classmethod
    def from_json(cls, data: dict) -> Machine:
        return cls(data["cpus"], data["platform"])


@dataclass
class Clock:
    """When a stack's run started (UTC, for the results' names) and how long it has taken."""

    started_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc))
    started: float = field(default_factory=time.monotonic)

    @property
    def iso(self) -> str:
        return self.started_at.isoformat(timespec="seconds")

    @property
    def timestamp(self) -> str:
        return self.started_at.strftime("%Y%m%dT%H%M%SZ")

    def total_seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def stacks_of(option: str) -> list[Stack] | None:
    """The stacks of --stack, or None (having said why) when it names none."""
    try:
        return selected_stacks(option)
    except ValueError as error:
        say(str(error))
        return None


def run_stacks(stacks: list[Stack], benchmark: Callable[[Stack], Result],
               publish: Callable[[Stack, Result], None]) -> int:
    """BENCHMARK each stack, then PUBLISH its result; the exit status (1 at the first failure)."""
    # A stopped run still removes its containers and scratch directories (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for stack in stacks:
        try:
            result = benchmark(stack)
        except (BenchmarkError, DockerError, ImageError, images.ImageBuildError) as error:
            say(f"\nFAILED on {stack.name}: {error}")
            return 1
        publish(stack, result)
    return 0


def parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A benchmark's parser, its epilog (configs, sizes) laid out as written."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


@dataclass
class StackRun:
    """What a stack's result starts with: which benchmark, how it was run, when, on what."""

    stack: str
    command: str
    started: str
    timestamp: str
    total_seconds: float
    machine: Machine

    def header_json(self, benchmark: str) -> dict:
        return {"benchmark": benchmark, "stack": self.stack, "command": self.command, "started": self.started,
                "timestamp": self.timestamp, "total_seconds": self.total_seconds, "machine": self.machine.to_json()}

    @staticmethod
    def header_from_json(data: dict, benchmark: str) -> dict:
        """The keyword arguments of StackRun's fields, from a result's JSON of BENCHMARK."""
        if data["benchmark"] != benchmark:
            raise ValueError(f"not a result of the {benchmark} benchmark: {data['benchmark']}")
        return {"stack": data["stack"], "command": data["command"], "started": data["started"],
                "timestamp": data["timestamp"], "total_seconds": data["total_seconds"],
                "machine": Machine.from_json(data["machine"])}


def header(clock: Clock, stack: Stack, command: str, machine: Machine) -> dict:
    """The keyword arguments of StackRun's fields for a run of STACK that started at CLOCK."""
    return {"stack": stack.name, "command": command, "started": clock.iso, "timestamp": clock.timestamp,
            "total_seconds": clock.total_seconds(), "machine": machine}
