"""The soak benchmark's typed results: a dyno's run and its processes, a config's figures over
the rounds, what the background thread restart after fork costs (fork+exec, and a child's work
right after a fork without exec), and a stack's result. Each writes and reads the JSON keys of
the results file (`to_json`, `from_json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from common.cli import StackRun
from common.configs import Config
from common.stats import Spread


@dataclass
class ProcessFigures:
    """One process of a dyno, as the sampler saw it over the run."""

    pid: int
    ppid: int
    comm: str
    cmdline: str
    # The libjemalloc files it had mapped.
    mapped: list[str]
    background_thread: bool | None
    peak_pss: int
    peak_rss: int
    worker: bool
    cpu_ms_while_sampled: int
    # jemalloc's figures at its last sample (JEMALLOC_METRICS): live data and resident bytes.
    allocated: int | None = None
    resident: int | None = None

    @classmethod
    def from_json(cls, data: dict) -> ProcessFigures:
        return cls(**data)


@dataclass
class RunFigures:
    """The figures of one dyno's run (see analysis.run_figures)."""

    # (seconds since the load started, PSS bytes, RSS bytes), a sample a second.
    series: list[tuple[float, int, int]]
    start_pss: int
    # PSS at "1min", "3min", ... of the load.
    checkpoints: dict[str, int | None]
    peak_pss: int
    peak_rss: int
    steady_pss: float | None
    slope_mib_per_min: float | None
    after_idle_pss: float | None
    r14_seconds: float
    r15: bool
    jobs_done: int
    jobs_sent: int
    stalled_seconds: float | None
    cpu_seconds: float | None
    cpu_ms_per_job: float | None
    workers: int
    worker_peak_pss: int
    base_peak_pss: int
    workers_fit: int
    processes: list[ProcessFigures]
    # jemalloc's own split of the dyno's memory (JEMALLOC_METRICS, summed over its processes):
    # (seconds since the load started, allocated bytes, resident bytes), a sample a second, and
    # over the second half of the load: live data, overhead (resident - allocated) and
    # resident/allocated, the distance to what an ideal allocator would hold. None without
    # jemalloc, and in results written before it was measured.
    allocator_series: list[tuple[float, int, int]] = field(default_factory=list)
    steady_allocated: float | None = None
    steady_overhead: float | None = None
    resident_per_live: float | None = None
    # The sample# lines of the dyno's last seconds (one per process) and jemalloc-check's
    # memory lines at the end of the run, as a user would see them.
    metrics_lines: list[str] = field(default_factory=list)
    check_lines: list[str] = field(default_factory=list)

    def figure(self, name: str):
        return getattr(self, name)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RunFigures:
        names = cls.__dataclass_fields__
        return cls(**{name: data[name] for name in names if name != "processes" and name in data},
                   processes=[ProcessFigures.from_json(process) for process in data["processes"]])


@dataclass
class SoakRun:
    """One dyno of a round: its figures, or, for a dyno killed before the end (R15), what it left."""

    app: str
    config: str
    round: int
    figures: RunFigures | None = None
    failures: int = 0
    oom_killed: bool = False
    log_tail: str = ""
    feeder: list[str] = field(default_factory=list)

    @property
    def killed(self) -> bool:
        return self.figures is None

    def to_json(self) -> dict:
        data = {"app": self.app, "config": self.config, "round": self.round, "killed": self.killed}
        if self.figures is None:
            return {**data, "oom_killed": self.oom_killed, "log_tail": self.log_tail, "feeder": self.feeder}
        return {**data, **self.figures.to_json(), "failures": self.failures}

    @classmethod
    def from_json(cls, data: dict) -> SoakRun:
        run = cls(data["app"], data["config"], data["round"])
        if data["killed"]:
            run.oom_killed, run.log_tail, run.feeder = data["oom_killed"], data["log_tail"], data["feeder"]
        else:
            run.figures, run.failures = RunFigures.from_json(data), data["failures"]
        return run


@dataclass
class ConfigFigures:
    """One config's figures for one app over the rounds."""

    # Per figure of analysis.FIGURES: median [min-max] of the rounds (None when no dyno lived).
    figures: dict[str, Spread | None]
    checkpoints: dict[str, Spread | None]
    # Rounds whose dyno went past twice its quota, or was killed.
    r15_runs: int
    # Per figure of analysis.RATIOS: the ratio to the baseline config in the same round.
    ratio: dict[str, Spread | None]
    rounds: int

    def to_json(self) -> dict:
        def spreads(figures):
            return {name: figure and figure.to_json() for name, figure in figures.items()}

        return {**spreads(self.figures), "checkpoints": spreads(self.checkpoints), "r15_runs": self.r15_runs,
                "ratio": spreads(self.ratio), "rounds": self.rounds}

    @classmethod
    def from_json(cls, data: dict) -> ConfigFigures:
        def spreads(figures):
            return {name: Spread.from_json(figure) for name, figure in figures.items()}

        rest = {"checkpoints", "r15_runs", "ratio", "rounds"}
        return cls(spreads({name: figure for name, figure in data.items() if name not in rest}),
                   spreads(data["checkpoints"]), data["r15_runs"], spreads(data["ratio"]), data["rounds"])


# Per app, per config name.
Summary = dict[str, dict[str, ConfigFigures]]


def _median(values: list[float]) -> float:
    """The middle value (of an even count, the upper one of the two)."""
    return sorted(values)[len(values) // 2]


@dataclass(frozen=True)
class ForkExecFigure:
    """Median seconds of the 500-command loop, with and without the background thread restart."""

    restart: float
    no_restart: float

    @property
    def ratio(self) -> float:
        return self.restart / self.no_restart

    def to_json(self) -> dict:
        return {"restart": self.restart, "no-restart": self.no_restart, "ratio": self.ratio}


# How the lines name the languages of the after-fork measurement.
LANGUAGE_NAMES = {"c": "C", "ruby": "Ruby", "python": "Python"}


@dataclass(frozen=True)
class AfterForkFigure:
    """Median seconds of a child's work right after its fork, with and without the background
    thread restart."""

    restart: float
    no_restart: float

    @property
    def ratio(self) -> float:
        """Without over with, the other way round from ForkExecFigure's: the child's speed with
        the restart as a share of its speed without (below 1: the restart slows it down)."""
        return self.no_restart / self.restart

    def to_json(self) -> dict:
        return {"restart": self.restart, "no-restart": self.no_restart, "ratio": self.ratio}


@dataclass
class AfterForkCost:
    """Every measurement of the work a child does right after its fork: per language (c, ruby,
    python) and kind (restart, no-restart), the seconds each child took, wall and CPU."""

    wall_seconds: dict[str, dict[str, list[float]]]
    cpu_seconds: dict[str, dict[str, list[float]]]
    # Per language, what its child did.
    work: dict[str, str]

    @property
    def figures(self) -> dict[str, dict[str, AfterForkFigure]]:
        """Per language, per measure (wall_seconds, cpu_seconds)."""
        return {language: {kind: AfterForkFigure(_median(seconds[language]["restart"]),
                                                 _median(seconds[language]["no-restart"]))
                           for kind, seconds in (("wall_seconds", self.wall_seconds),
                                                 ("cpu_seconds", self.cpu_seconds))}
                for language in self.wall_seconds}

    def lines(self) -> list[str]:
        lines = []
        for language, figures in self.figures.items():
            wall, cpu = figures["wall_seconds"], figures["cpu_seconds"]
            lines.append(f"{LANGUAGE_NAMES.get(language, language)}, {self.work[language]} in a child right after its "
                         f"fork, median of {len(self.wall_seconds[language]['restart'])}: {wall.restart:.3f} s wall "
                         f"and {cpu.restart:.3f} s CPU with the background thread restarted after fork, "
                         f"{wall.no_restart:.3f} s and {cpu.no_restart:.3f} s with "
                         f"JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false: ratio (without/with) {wall.ratio:.3f} wall, "
                         f"{cpu.ratio:.3f} CPU")
        return lines

    def to_json(self) -> dict:
        return {"figures": {language: {kind: figure.to_json() for kind, figure in figures.items()}
                            for language, figures in self.figures.items()},
                "wall_seconds": self.wall_seconds, "cpu_seconds": self.cpu_seconds, "work": self.work}

    @classmethod
    def from_json(cls, data: dict) -> AfterForkCost:
        return cls(data["wall_seconds"], data["cpu_seconds"], data["work"])


@dataclass
class ForkExecCost:
    """Every measurement of the fork+exec loop (seconds, per kind: restart, no-restart), and of
    the work right after a fork without exec (None in results written before it was measured)."""

    wall_seconds: dict[str, list[float]]
    cpu_seconds: dict[str, list[float]]
    after_fork: AfterForkCost | None = None

    @property
    def figures(self) -> dict[str, ForkExecFigure]:
        return {kind: ForkExecFigure(_median(times["restart"]), _median(times["no-restart"]))
                for kind, times in (("wall_seconds", self.wall_seconds), ("cpu_seconds", self.cpu_seconds))}

    def lines(self) -> list[str]:
        wall, cpu = self.figures["wall_seconds"], self.figures["cpu_seconds"]
        return [f"500 external commands from bash, median of {len(self.wall_seconds['restart'])}: "
                f"{wall.restart:.2f} s wall and {cpu.restart:.2f} s CPU with "
                f"the background thread restarted after fork, {wall.no_restart:.2f} s and "
                f"{cpu.no_restart:.2f} s with JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false: "
                f"ratio {wall.ratio:.3f} wall, {cpu.ratio:.3f} CPU"]

    def after_fork_lines(self) -> list[str]:
        return [] if self.after_fork is None else self.after_fork.lines()

    def headed_lines(self) -> list[str]:
        """Every line, headed by what it measured, as the report and the terminal show them."""
        return ([f"fork+exec: {line}" for line in self.lines()]
                + [f"fork without exec: {line}" for line in self.after_fork_lines()])

    def to_json(self) -> dict:
        data = {"figures": {kind: figure.to_json() for kind, figure in self.figures.items()},
                "wall_seconds": self.wall_seconds, "cpu_seconds": self.cpu_seconds}
        if self.after_fork is not None:
            data["after_fork"] = self.after_fork.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> ForkExecCost:
        after_fork = data.get("after_fork")
        return cls(data["wall_seconds"], data["cpu_seconds"],
                   None if after_fork is None else AfterForkCost.from_json(after_fork))


@dataclass(frozen=True)
class SoakParameters:
    load_seconds: int
    idle_seconds: int
    repetitions: int
    # Jobs or requests per second: (worker apps, web app).
    rates: tuple[float, float]
    seed: int
    quota_mib: int
    size: str
    # Per app, the workers it ran with when not the Procfile's (a fit run's).
    workers: dict[str, int] = field(default_factory=dict)
    # The feeder's job mix: normal or heavy.
    load: str = "normal"

    def to_json(self) -> dict:
        return {**asdict(self), "rates": list(self.rates)}

    @classmethod
    def from_json(cls, data: dict) -> SoakParameters:
        return cls(**{**data, "rates": tuple(data["rates"])})


@dataclass
class SoakResult(StackRun):
    """The soak benchmark of one stack (the results' JSON file)."""

    jemalloc_version: str
    image: str
    parameters: SoakParameters
    # Per app name: what it is.
    apps: dict[str, str]
    configs: list[Config]
    # None for a fit run, which measures memory only.
    fork_exec: ForkExecCost | None
    summary: Summary
    runs: list[SoakRun]

    def run_of(self, app: str, config: str, round_number: int = 0) -> SoakRun:
        (run,) = [run for run in self.runs if run.app == app and run.config == config and run.round == round_number]
        return run

    def to_json(self) -> dict:
        return {
            **self.header_json("soak"),
            "jemalloc_version": self.jemalloc_version,
            "image": self.image,
            "parameters": self.parameters.to_json(),
            "apps": self.apps,
            "configs": {config.name: config.to_json() for config in self.configs},
            "fork_exec": None if self.fork_exec is None else self.fork_exec.to_json(),
            **({} if self.fork_exec is None else {"fork_exec_lines": self.fork_exec.lines()}),
            **({} if self.fork_exec is None or self.fork_exec.after_fork is None
               else {"after_fork_lines": self.fork_exec.after_fork_lines()}),
            "summary": {app: {name: figures.to_json() for name, figures in per_config.items()}
                        for app, per_config in self.summary.items()},
            "runs": [run.to_json() for run in self.runs],
        }

    @classmethod
    def from_json(cls, data: dict) -> SoakResult:
        return cls(
            **cls.header_from_json(data, "soak"),
            jemalloc_version=data["jemalloc_version"],
            image=data["image"],
            parameters=SoakParameters.from_json(data["parameters"]),
            apps=data["apps"],
            configs=[Config.from_json(name, config) for name, config in data["configs"].items()],
            fork_exec=None if data["fork_exec"] is None else ForkExecCost.from_json(data["fork_exec"]),
            summary={app: {name: ConfigFigures.from_json(figures) for name, figures in per_config.items()}
                     for app, per_config in data["summary"].items()},
            runs=[SoakRun.from_json(run) for run in data["runs"]],
        )
