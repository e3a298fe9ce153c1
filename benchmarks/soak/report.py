"""The soak benchmark's results for people: terminal tables, Markdown, and a PNG chart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from common.configs import MIB
from common.tables import Render, cell, markdown_table, text_table

from .analysis import CHECKPOINT_MINUTES, FIGURES
from .results import ConfigFigures, SoakResult

__all__ = ["chart", "fit_sentence", "markdown", "tables", "text_table"]

# The config whose workers a fit run packs into the dyno, and the one it is compared with first.
DEFAULT_CONFIG = "jemalloc"


def headline(per_config: dict[str, ConfigFigures], quota_mib: int, render: Render) -> str:
    """Heroku's view of one app: workers per dyno, R14, and memory and CPU against glibc."""
    headings = ["config", f"workers/{quota_mib} MB", "R14 s", "R15", "steady", "peak", "after idle",
                "slope MiB/min", "CPU/job"]
    rows = []
    for name, figures in per_config.items():
        ratio = figures.ratio
        rows.append([
            name,
            cell(figures.figures["workers_fit"], ranges=False),
            cell(figures.figures["r14_seconds"], ranges=False),
            f"{figures.r15_runs}/{figures.rounds}" if figures.r15_runs else "no",
            cell(ratio["steady_pss"], decimals=2, ranges=False),
            cell(ratio["peak_pss"], decimals=2, ranges=False),
            cell(ratio["after_idle_pss"], decimals=2, ranges=False),
            cell(figures.figures["slope_mib_per_min"], decimals=2, ranges=False),
            cell(ratio["cpu_ms_per_job"], decimals=2, ranges=False),
        ])
    return render(headings, rows)


def fit_sentence(app: str, per_config: dict[str, ConfigFigures], workers: int, quota_mib: int,
                 minutes: float) -> str:
    """A fit run's finding for APP in a user's words: the default's workers, and how long the same
    workers spent over the quota under each other config."""
    def over(name: str) -> str:
        figures = per_config[name]
        if figures.r15_runs:
            return "went past twice the quota (R15: Heroku kills the dyno)"
        seconds = figures.figures["r14_seconds"]
        if seconds is None or not seconds.median:
            return "0 s over quota"
        return f"over quota (R14) for {seconds.median:.0f} s"

    if DEFAULT_CONFIG not in per_config:
        return f"{app}: {workers} workers for {minutes:g} min in {quota_mib} MB; the default config did not run"
    others = [f"{name} {over(name)}" for name in per_config if name != DEFAULT_CONFIG]
    return (f"{app}: {workers} workers ran for {minutes:g} min in {quota_mib} MB with the buildpack's default "
            f"({over(DEFAULT_CONFIG)}); the same {workers}: " + "; ".join(others))


def fit_table(per_config: dict[str, ConfigFigures], render: Render) -> str:
    """A fit run's table of one app: how each config held the same workers in the quota."""
    headings = ["config", "R14 s", "R15", "peak MiB", "steady MiB", "after idle MiB", "slope MiB/min", "jobs",
                "CPU/job", "resident/live"]
    rows = []
    for name, figures in per_config.items():
        rows.append([
            name,
            cell(figures.figures["r14_seconds"], ranges=False),
            f"{figures.r15_runs}/{figures.rounds}" if figures.r15_runs else "no",
            cell(figures.figures["peak_pss"], MIB, ranges=False),
            cell(figures.figures["steady_pss"], MIB, ranges=False),
            cell(figures.figures["after_idle_pss"], MIB, ranges=False),
            cell(figures.figures["slope_mib_per_min"], decimals=2, ranges=False),
            cell(figures.figures["jobs_done"], ranges=False),
            cell(figures.ratio["cpu_ms_per_job"], decimals=2, ranges=False),
            cell(figures.figures["resident_per_live"], decimals=2, ranges=False),
        ])
    return render(headings, rows)


def fit_section(app: str, per_config: dict[str, ConfigFigures], parameters, render: Render) -> str:
    """A fit run's finding for APP, then its table."""
    return (fit_sentence(app, per_config, parameters.workers[app], parameters.quota_mib, parameters.load_seconds / 60)
            + "\n\n" + fit_table(per_config, render))


def details(per_config: dict[str, ConfigFigures], render: Render) -> str:
    minutes = [f"{minute}min" for minute in CHECKPOINT_MINUTES
               if any(f"{minute}min" in figures.checkpoints for figures in per_config.values())]
    headings = ["config", *(f"{minute} MiB" for minute in minutes), *(heading for _, heading, *_ in FIGURES)]
    rows = []
    for name, figures in per_config.items():
        rows.append([
            name,
            *(cell(figures.checkpoints.get(minute), MIB) for minute in minutes),
            *(cell(figures.figures.get(key), divisor, decimals) for key, _, divisor, decimals in FIGURES),
        ])
    return render(headings, rows)


def _apps(result: SoakResult) -> Iterator[tuple[str, dict[str, ConfigFigures]]]:
    for app, per_config in result.summary.items():
        if per_config:
            yield app, per_config


def tables(result: SoakResult, render: Render, title: Callable[[str], str] = lambda text: text) -> str:
    parts = []
    quota = result.parameters.quota_mib
    for app, per_config in _apps(result):
        about = result.apps[app]
        if app in result.parameters.workers:
            parts.append(title(f"{app} ({about}), {result.parameters.workers[app]} workers: the fit run") + "\n\n"
                         + fit_section(app, per_config, result.parameters, render))
        parts.append(title(f"{app} ({about}): ratios to glibc, median of the rounds") + "\n\n"
                     + headline(per_config, quota, render))
        parts.append(title(f"{app}: dyno memory (PSS) and work, median [min-max]") + "\n\n"
                     + details(per_config, render))
    return "\n\n".join(parts)


def markdown(result: SoakResult, chart_name: str | None = None) -> str:
    """The run for a README: what ran, the chart, each app's headline table, then (folded) its
    figures in MiB. The README's results are this file as the benchmark wrote it."""
    parameters = result.parameters
    quota = parameters.quota_mib
    lines = [
        f"#### {result.stack}",
        "",
        f"`{result.command}`, {result.started[:10]}, {result.total_seconds / 60:.0f} min; "
        f"{parameters.load_seconds / 60:g} min of load then {parameters.idle_seconds} s idle, "
        f"{parameters.repetitions} round(s), seed {parameters.seed}, rates {parameters.rates[0]} jobs/s "
        f"(workers) and {parameters.rates[1]} requests/s (puma) per the Procfile's workers"
        f"{'' if parameters.load == 'normal' else f', the {parameters.load} job mix'}"
        f"{'; workers ' + ', '.join(f'{app} {n}' for app, n in parameters.workers.items()) if parameters.workers else ''}"
        f"; {quota} MB dynos "
        f"(limit {2 * quota} MB); {result.machine.cpus} CPUs; jemalloc "
        f"{result.jemalloc_version}.",
        "",
        *(f"- {line}" for line in (result.fork_exec.headed_lines() if result.fork_exec else [])),
        "",
    ]
    if chart_name:
        lines += [f"![{result.stack}: dyno memory over time, first round]({chart_name})", ""]
    for app, per_config in _apps(result):
        if app in parameters.workers:
            lines += [f"**{app}** ({result.apps[app]}), {parameters.workers[app]} workers: the fit run", "",
                      fit_section(app, per_config, parameters, markdown_table), ""]
        lines += [f"**{app}** ({result.apps[app]}): ratios to glibc, median of the rounds", "",
                  headline(per_config, quota, markdown_table), ""]
    lines += ["<details><summary>Dyno memory (PSS) in MiB and work, median [min-max] of the rounds</summary>", ""]
    for app, per_config in _apps(result):
        lines += [f"**{app}**", "", details(per_config, markdown_table), ""]
    lines += ["</details>"]
    seen = user_lines(result)
    if seen:
        lines += ["", "<details><summary>What a user sees with JEMALLOC_METRICS: each process's last sample# line "
                  "and jemalloc-check --all's memory lines, at the end of the first round</summary>", ""]
        for heading, text in seen:
            lines += [f"**{heading}**", "", "```", *text, "```", ""]
        lines += ["</details>"]
    return "\n".join(lines) + "\n"


def user_lines(result: SoakResult) -> list[tuple[str, list[str]]]:
    """Per app and jemalloc config of round 0: the sample# lines and jemalloc-check's memory lines."""
    seen = []
    for run in result.runs:
        if run.round == 0 and not run.killed and (run.figures.metrics_lines or run.figures.check_lines):
            seen.append((f"{run.app} / {run.config}", run.figures.metrics_lines + run.figures.check_lines))
    return seen


def chart(result: SoakResult, path: Path) -> bool:
    """Dyno memory over time, one panel per app, one line per config (the first round)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    apps = [app for app, per_config in result.summary.items() if per_config]
    figure, axes = plt.subplots(len(apps), 1, figsize=(9, 3.2 * len(apps)), squeeze=False)
    quota = result.parameters.quota_mib
    for axis, app in zip(axes[:, 0], apps):
        for run in result.runs:
            if run.app == app and run.round == 0 and not run.killed:
                series = run.figures.series
                axis.plot([t / 60 for t, _, _ in series], [pss / MIB for _, pss, _ in series], label=run.config,
                          linewidth=1.2)
        axis.axhline(quota, color="black", linestyle="--", linewidth=0.8, label=f"quota {quota} MB")
        axis.axvline(result.parameters.load_seconds / 60, color="grey", linestyle=":", linewidth=0.8)
        axis.set_title(f"{result.stack}: {app} ({result.apps[app]})", fontsize=10)
        axis.set_ylabel("dyno PSS (MiB)")
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("minutes since the load started (dotted: load ends, then idle)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True
