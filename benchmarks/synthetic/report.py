"""The synthetic benchmark's results for people: the build lines and the tables, on the terminal
(common.tables.text_table) or in Markdown (markdown_table)."""

from __future__ import annotations

from collections.abc import Callable

from common.configs import BASELINE
from common.tables import Render, cell, markdown_table

from .results import METRICS, RATIO_METRICS, BuildFigures, StackResult, Summary

SHORT = {"python": "Py", "ruby": "Rb"}


def headline_table(summary: Summary, render: Render) -> str | None:
    """Ratios to glibc of both languages side by side (medians), and workers per 512 MB."""
    languages = [language for language, per_config in summary.items() if BASELINE in per_config]
    if not languages:
        return None
    headings = ["config"]
    for language in languages:
        prefix = SHORT.get(language, language)
        headings += [f"{prefix} steady", f"{prefix} after work", f"{prefix} peak", f"{prefix} wall",
                     f"{prefix} workers/512 MB"]
    rows = []
    for name in summary[languages[0]]:
        row = [name]
        for language in languages:
            figures = summary[language][name]
            row += [cell(figures.ratio_to_glibc.get(metric), decimals=2, ranges=False)
                    for metric in ("steady_rss_bytes", "after_work_rss_bytes", "peak_rss_bytes", "wall_seconds")]
            row.append(str(figures.workers_per_512mb))
        rows.append(row)
    return render(headings, rows)


def tables(summary: Summary, render: Render, title: Callable[[str], str] = lambda text: text) -> str:
    """The headline table, then the figures and ratios tables of every language, rendered by RENDER."""
    parts = []
    headline = headline_table(summary, render)
    if headline:
        parts.append(title("RSS and wall time as a ratio to glibc (median of the rounds), workers per 512 MB at peak RSS")
                     + "\n\n" + headline)
    for language, per_config in summary.items():
        if not per_config:
            continue
        runtime = next(iter(per_config.values())).runtime
        rows = [[name, *(cell(figures.figures[metric], divisor, decimals) for metric, _, divisor, decimals in METRICS),
                 str(figures.workers_per_512mb)] for name, figures in per_config.items()]
        parts.append(title(f"{language} ({runtime}): median [min-max]") + "\n\n"
                     + render(["config", *(heading for _, heading, *_ in METRICS), "workers/512 MB"], rows))
        if BASELINE in per_config:
            rows = [[name, *(cell(figures.ratio_to_glibc.get(metric), decimals=2)
                             for metric in [*RATIO_METRICS, "workers_per_512mb"])]
                    for name, figures in per_config.items()]
            headings = ["config", "peak RSS", "steady RSS", "after-work RSS", "wall", "CPU", "workers/512 MB"]
            parts.append(title(f"{language}: ratio to glibc, median of the rounds' ratios [min-max]") + "\n\n"
                         + render(headings, rows))
    return "\n\n".join(parts)


def build_lines(build: BuildFigures) -> list[str]:
    return [
        f"jemalloc {build.jemalloc_version} from the offline fixture {build.source}",
        f"cold compile {build.cold_compile_seconds:.1f} s (the buildpack's make: {build.jemalloc_build_seconds} s), "
        f"warm (cached) compile {build.warm_compile_seconds:.1f} s"
        f"{'' if build.warm_compile_used_cache else ' (the warm compile did NOT use the cache)'}",
        f"slug bytes added: {build.slug_bytes_added:,} ({build.slug_bytes_added_compressed:,} gzipped)"
        " = vendor/jemalloc + .profile.d/jemalloc.sh",
        "the default build's compiled-in MALLOC_CONF: "
        f"{build.default_build_info.get('default_malloc_conf') or 'none (jemalloc stock settings)'}",
        *([f"JEMALLOC_TUNING=none build (jemalloc-stock and the MALLOC_CONF candidates): "
           f"cold compile {build.stock_compile_seconds:.1f} s"] if build.stock_compile_seconds is not None else []),
    ]


def markdown_report(result: StackResult) -> str:
    parameters = result.parameters
    lines = [
        f"### {result.stack}",
        "",
        f"`{result.command}`, {result.started[:10]}, {result.total_seconds / 60:.1f} min; "
        f"{parameters.threads} threads, {parameters.jobs} jobs, seed {parameters.seed}, "
        f"{parameters.repetitions} repetition(s), {parameters.idle} s idle; "
        f"{result.machine.cpus} CPUs, load average {result.machine.load_average_start[0]:.1f} at the start.",
        "",
        *(f"- {line}" for line in build_lines(result.build)),
        "",
        tables(result.summary, markdown_table, title=lambda text: f"**{text}**"),
    ]
    return "\n".join(lines) + "\n"
