"""The figures of one dyno's run, and of all rounds, as Heroku would judge the dyno.

A run's timeline starts when the feeder starts its load (t = 0). Memory is the dyno's PSS sum
(each resident page once). R14: the seconds the dyno spent over its quota (Heroku then swaps
and logs R14); R15: whether it went past twice its quota, where Heroku kills it.
"""

from __future__ import annotations

import math
import statistics

from common.configs import MIB
from common.stats import spread

from .results import ConfigFigures, ProcessFigures, RunFigures, SoakRun, Summary
from .sampler import DynoSampler

CHECKPOINT_MINUTES = (1, 3, 5, 10, 30)
SHELLS = {"bash", "sh", "dash"}


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, bytes) points, in MiB per minute."""
    if len(points) < 3:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 60 / MIB


def workers(sampler: DynoSampler) -> tuple[list, list]:
    """The dyno's worker processes and the rest. Workers are the processes that lived through at
    least half of the run, are not shells, and have no child that did too. A passing child (a
    worker's fork for a subprocess, seen between its fork and its exec) leaves its parent a
    worker: a Celery threads worker on heroku-24 was once left out for one."""
    records = list(sampler.processes.values())
    longest = max((record.samples for record in records), default=0)
    lasting = [record for record in records if record.samples * 2 >= longest]
    parents = {record.ppid for record in lasting}
    leaves = [record for record in lasting if record.pid not in parents and record.comm not in SHELLS]
    rest = [record for record in records if record not in leaves]
    return leaves, rest


def run_figures(sampler: DynoSampler, events: dict, quota_mib: int, load_seconds: float) -> RunFigures:
    started = events["started"]["time"]
    load_ended = events["load_ended"]["time"]
    drained = events["drained"]["time"]
    finished = events["summary"]["time"]
    samples = [sample for sample in sampler.samples if started <= sample.time <= finished]
    if not samples:
        raise ValueError("no samples while the load ran")
    series = [(round(sample.time - started, 1), sample.pss, sample.rss) for sample in samples]
    loaded = [(t, pss) for t, pss, _ in series if t <= load_ended - started]
    second_half = [(t, pss) for t, pss in loaded if t >= load_seconds / 2]
    idle_tail = [pss for t, pss, _ in series if t >= finished - started - 10]
    quota = quota_mib * MIB

    checkpoints = {}
    for minute in CHECKPOINT_MINUTES:
        if minute * 60 <= load_seconds:
            before = [pss for t, pss in loaded if t <= minute * 60]
            checkpoints[f"{minute}min"] = before[-1] if before else None

    # Seconds over the quota: each sample stands for the time until the next one.
    over = 0.0
    for current, following in zip(samples, samples[1:]):
        if current.pss > quota:
            over += following.time - current.time

    cpu_samples = [sample for sample in sampler.samples if started <= sample.time <= drained]
    cpu_seconds = (cpu_samples[-1].cpu_ns - cpu_samples[0].cpu_ns) / 1e9 if len(cpu_samples) > 1 else None
    done = events["summary"]["done"]

    worker_records, other_records = workers(sampler)
    worker_peak = max((record.peak_pss for record in worker_records), default=0)
    worker_pids = {record.pid for record in worker_records}
    # What the dyno holds besides its workers (master process, shells), at its largest.
    base_peak = max((sum(pss for pid, pss in sample.processes.items() if pid not in worker_pids)
                     for sample in samples), default=0)
    fit = math.floor((quota - base_peak) / worker_peak) if worker_peak else 0

    allocator_series = [(round(sample.time - started, 1), sample.allocated, sample.resident)
                        for sample in samples if sample.allocated is not None]
    steady_split = [(allocated, resident) for t, allocated, resident in allocator_series
                    if load_seconds / 2 <= t <= load_ended - started]
    steady_allocated = statistics.fmean(a for a, _ in steady_split) if steady_split else None
    steady_resident = statistics.fmean(r for _, r in steady_split) if steady_split else None

    return RunFigures(
        series=series,
        start_pss=samples[0].pss,
        checkpoints=checkpoints,
        peak_pss=max(pss for _, pss, _ in series),
        peak_rss=max(rss for _, _, rss in series),
        steady_pss=statistics.fmean(pss for _, pss in second_half) if second_half else None,
        slope_mib_per_min=slope_per_minute(second_half),
        after_idle_pss=statistics.fmean(idle_tail) if idle_tail else None,
        r14_seconds=round(over, 1),
        r15=max(pss for _, pss, _ in series) > 2 * quota,
        jobs_done=done,
        jobs_sent=events["summary"]["sent"],
        stalled_seconds=events["summary"].get("stalled_seconds"),
        cpu_seconds=cpu_seconds,
        cpu_ms_per_job=cpu_seconds * 1000 / done if cpu_seconds is not None and done else None,
        workers=len(worker_records),
        worker_peak_pss=worker_peak,
        base_peak_pss=base_peak,
        workers_fit=fit,
        processes=[
            ProcessFigures(record.pid, record.ppid, record.comm, record.cmdline[:200], record.mapped,
                           record.background_thread, record.peak_pss, record.peak_rss,
                           worker=record in worker_records, cpu_ms_while_sampled=record.cpu_ms - record.first_cpu_ms,
                           allocated=record.allocated, resident=record.resident)
            for record in sorted(worker_records + other_records, key=lambda record: record.pid)
        ],
        allocator_series=allocator_series,
        steady_allocated=steady_allocated,
        steady_overhead=steady_resident - steady_allocated if steady_split else None,
        resident_per_live=steady_resident / steady_allocated if steady_allocated else None,
    )


# (figure, heading, divisor, decimals, lower is better)
FIGURES = [
    ("steady_pss", "steady MiB", MIB, 0),
    ("peak_pss", "peak MiB", MIB, 0),
    ("slope_mib_per_min", "slope MiB/min", 1, 2),
    ("after_idle_pss", "after idle MiB", MIB, 0),
    ("r14_seconds", "R14 s", 1, 0),
    ("workers_fit", "workers/dyno", 1, 0),
    ("jobs_done", "jobs", 1, 0),
    ("cpu_ms_per_job", "CPU ms/job", 1, 1),
    # jemalloc's own figures (JEMALLOC_METRICS), over the second half of the load.
    ("steady_allocated", "live MiB", MIB, 0),
    ("steady_overhead", "overhead MiB", MIB, 0),
    ("resident_per_live", "resident/live", 1, 2),
]
RATIOS = ["steady_pss", "peak_pss", "after_idle_pss", "cpu_ms_per_job"]


def summarize(runs: list[SoakRun], apps: list[str], configs: list[str], baseline: str) -> Summary:
    """Per app and config: each figure's median [min-max] over the rounds, and its ratio to the
    baseline config of the same round."""
    summary = {}
    for app in apps:
        per_config = {}
        baseline_runs = {run.round: run.figures for run in runs
                         if run.app == app and run.config == baseline and not run.killed}
        for config in configs:
            every = [run for run in runs if run.app == app and run.config == config]
            if not every:
                continue
            # A dyno killed at twice its quota (R15) has no other figure.
            mine = [(run.round, run.figures) for run in every if not run.killed]
            ratios = {}
            for name in RATIOS:
                ratios[name] = spread([figures.figure(name) / baseline_runs[round_number].figure(name)
                                       for round_number, figures in mine
                                       if round_number in baseline_runs and figures.figure(name) is not None
                                       and baseline_runs[round_number].figure(name)])
            per_config[config] = ConfigFigures(
                figures={name: spread([figures.figure(name) for _, figures in mine]) for name, *_ in FIGURES},
                checkpoints={key: spread([figures.checkpoints.get(key) for _, figures in mine])
                             for key in (mine[0][1].checkpoints if mine else {})},
                r15_runs=sum(1 for run in every if run.killed or run.figures.r15),
                ratio=ratios,
                rounds=len(every),
            )
        summary[app] = per_config
    return summary
