"""The synthetic benchmark's typed results: what a workload prints, what the runner measures and
what the summary, the report and the tests read. Each writes and reads the JSON keys of the
results file (`to_json`, `from_json`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field

from common.cli import StackRun
from common.configs import MIB, Config
from common.stats import Spread

from .configs import Parameters

# (field of a run, heading, unit divisor, decimals)
METRICS = [
    ("peak_rss_bytes", "peak RSS MiB", MIB, 1),
    ("steady_rss_bytes", "steady RSS MiB", MIB, 1),
    ("after_work_rss_bytes", "after-work RSS MiB", MIB, 1),
    ("live_heap_bytes", "live heap MiB", MIB, 1),
    ("baseline_rss_bytes", "baseline MiB", MIB, 1),
    ("wall_seconds", "wall s", 1, 2),
    ("cpu_seconds", "CPU s", 1, 2),
]
RATIO_METRICS = ["peak_rss_bytes", "steady_rss_bytes", "after_work_rss_bytes", "wall_seconds", "cpu_seconds"]
DYNO_MEMORY = 512 * MIB


@dataclass
class WorkerRun:
    """One worker dyno's run: the JSON line its workload printed (benchmarks/workloads), then what
    the runner adds (config, command, stderr, round)."""

    language: str
    runtime: str
    threads: int
    jobs: int
    seed: int
    objects_per_job: int
    io_waits: int
    io_wait_ms: float
    idle_seconds: float
    baseline_rss_bytes: int
    peak_rss_bytes: int
    steady_rss_bytes: int
    after_work_rss_bytes: int
    live_heap_bytes: int
    heap_detail: dict
    wall_seconds: float
    cpu_seconds: float
    objects_built: int
    payload_length_sum: int
    # The libjemalloc the worker had mapped, if any, and the settings jemalloc reported.
    jemalloc: str | None
    jemalloc_options: dict | None
    environment: dict[str, str | None]
    samples: int
    # [seconds since start, RSS bytes]
    series: list[list[float]]
    config: str = ""
    command: str = ""
    stderr: str = ""
    round: int = 0

    @classmethod
    def from_line(cls, line: str, **runner: object) -> WorkerRun:
        """The workload's JSON line, with the runner's fields; ValueError when a figure is missing."""
        data = json.loads(line)
        workload = [item.name for item in dataclasses.fields(cls)][:-4]
        missing = [name for name in workload if name not in data]
        if missing:
            raise ValueError(f"the workload's line lacks {', '.join(missing)}")
        return cls(**{name: data[name] for name in workload}, **runner)

    @classmethod
    def from_json(cls, data: dict) -> WorkerRun:
        return cls(**data)

    def to_json(self) -> dict:
        return asdict(self)

    def figure(self, metric: str) -> float:
        return getattr(self, metric)

    @property
    def allocator_overhead_bytes(self) -> int:
        """What the process holds after the work beyond its baseline and its live heap."""
        return self.after_work_rss_bytes - self.baseline_rss_bytes - self.live_heap_bytes


@dataclass
class BuildFigures:
    """The compiles: cold and warm of the buildpack's default build, what it adds to the slug,
    and the cold compile of the JEMALLOC_TUNING=none build when a config runs on it."""

    jemalloc_version: str
    source: str
    cold_compile_seconds: float
    # The buildpack's own account of the cold build: the make of jemalloc, without the containers around it.
    jemalloc_build_seconds: int | None
    warm_compile_seconds: float
    warm_compile_used_cache: bool
    slug_bytes_added: int
    slug_bytes_added_compressed: int
    default_build_info: dict[str, str]
    cold_compile_output: str
    warm_compile_output: str
    stock_compile_seconds: float | None = None
    stock_build_info: dict[str, str] | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        for name in ("stock_compile_seconds", "stock_build_info"):
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict) -> BuildFigures:
        return cls(**data)


@dataclass
class ConfigSummary:
    """One config's figures in one language over the rounds."""

    # Per field of METRICS.
    figures: dict[str, Spread]
    allocator_overhead_bytes: Spread
    workers_per_512mb: int
    # Per field of RATIO_METRICS, paired by round, and workers_per_512mb's ratio (a number).
    ratio_to_glibc: dict[str, Spread | float] = field(default_factory=dict)
    runtime: str = ""

    def to_json(self) -> dict:
        return {
            **{metric: figure.to_json() for metric, figure in self.figures.items()},
            "allocator_overhead_bytes": self.allocator_overhead_bytes.to_json(),
            "workers_per_512mb": self.workers_per_512mb,
            "ratio_to_glibc": {metric: ratio.to_json() if isinstance(ratio, Spread) else ratio
                               for metric, ratio in self.ratio_to_glibc.items()},
            "runtime": self.runtime,
        }

    @classmethod
    def from_json(cls, data: dict) -> ConfigSummary:
        return cls(
            figures={metric: Spread.from_json(data[metric]) for metric, *_ in METRICS},
            allocator_overhead_bytes=Spread.from_json(data["allocator_overhead_bytes"]),
            workers_per_512mb=data["workers_per_512mb"],
            ratio_to_glibc={metric: Spread.from_json(ratio) if isinstance(ratio, dict) else ratio
                            for metric, ratio in data["ratio_to_glibc"].items()},
            runtime=data["runtime"],
        )


# Per language, per config name (in the order the configs were given).
Summary = dict[str, dict[str, ConfigSummary]]


@dataclass(frozen=True)
class BenchmarkImages:
    run: str
    benchmark_run: str
    build: str
    upstream: bool


@dataclass
class StackResult(StackRun):
    """The benchmark of one stack: what ran, on what, and every figure (the results' JSON file)."""

    images: BenchmarkImages
    parameters: Parameters
    configs: list[Config]
    build: BuildFigures
    summary: Summary
    runs: list[WorkerRun]

    def runs_of(self, config: str, language: str) -> list[WorkerRun]:
        return [run for run in self.runs if run.config == config and run.language == language]

    def to_json(self) -> dict:
        return {
            **self.header_json("memory"),
            "images": asdict(self.images),
            "parameters": self.parameters.to_json(),
            "configs": {config.name: {"env": config.env, "about": config.about, "stock_build": config.stock_build}
                        for config in self.configs},
            "build": self.build.to_json(),
            "summary": {language: {name: figures.to_json() for name, figures in per_config.items()}
                        for language, per_config in self.summary.items()},
            "runs": [run.to_json() for run in self.runs],
        }

    @classmethod
    def from_json(cls, data: dict) -> StackResult:
        return cls(
            **cls.header_from_json(data, "memory"),
            images=BenchmarkImages(**data["images"]),
            parameters=Parameters.from_json(data["parameters"]),
            configs=[Config.from_json(name, config) for name, config in data["configs"].items()],
            build=BuildFigures.from_json(data["build"]),
            summary={language: {name: ConfigSummary.from_json(figures) for name, figures in per_config.items()}
                     for language, per_config in data["summary"].items()},
            runs=[WorkerRun.from_json(run) for run in data["runs"]],
        )
