"""The summary of the worker runs: per language and config, each figure's median and spread, its
ratio to glibc in the same round, and how many workers fit in a 512 MB dyno."""

from __future__ import annotations

import math

from common.configs import BASELINE, Config
from common.stats import spread

from .results import DYNO_MEMORY, METRICS, RATIO_METRICS, ConfigSummary, Summary, WorkerRun


def summarize(runs: list[WorkerRun], configs: list[Config], languages: list[str]) -> Summary:
    """Per language and config: each metric's median and spread, its ratio to glibc, workers per 512 MB."""
    summary = {}
    for language in languages:
        per_config = {}
        baseline = {run.round: run for run in runs if run.language == language and run.config == BASELINE}
        for config in configs:
            mine = sorted((run for run in runs if run.language == language and run.config == config.name),
                          key=lambda run: run.round)
            if not mine:
                continue
            figures = {metric: spread([run.figure(metric) for run in mine]) for metric, *_ in METRICS}
            ratios = {}
            for metric in RATIO_METRICS:
                # Paired by round: a config and glibc measured minutes apart share the machine's mood.
                paired = [run.figure(metric) / baseline[run.round].figure(metric) for run in mine
                          if run.round in baseline and baseline[run.round].figure(metric)]
                if paired:
                    ratios[metric] = spread(paired)
            per_config[config.name] = ConfigSummary(
                figures=figures,
                allocator_overhead_bytes=spread([run.allocator_overhead_bytes for run in mine]),
                workers_per_512mb=math.floor(DYNO_MEMORY / figures["peak_rss_bytes"].median),
                ratio_to_glibc=ratios,
                runtime=mine[0].runtime,
            )
        glibc = per_config.get(BASELINE)
        if glibc and glibc.workers_per_512mb:
            for figures in per_config.values():
                figures.ratio_to_glibc["workers_per_512mb"] = figures.workers_per_512mb / glibc.workers_per_512mb
        summary[language] = per_config
    return summary
