"""The benchmark's tables: the same rows rendered for the terminal or in Markdown."""

from __future__ import annotations

from collections.abc import Callable

from .stats import Spread

Render = Callable[[list[str], list[list[str]]], str]


def text_table(headings: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in [headings, *rows]) for column in range(len(headings))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in [headings, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(headings: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headings) + " |", "|" + "|".join("---" for _ in headings) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def cell(figure: Spread | float | None, divisor: float = 1, decimals: int = 0, ranges: bool = True) -> str:
    """A figure as `median [min-max]` (the median alone with one value or without RANGES), a
    plain number as itself, a missing figure as `-`."""
    if figure is None:
        return "-"
    if not isinstance(figure, Spread):
        return f"{figure / divisor:.{decimals}f}"
    median = figure.median / divisor
    if figure.n == 1 or not ranges:
        return f"{median:.{decimals}f}"
    return f"{median:.{decimals}f} [{figure.min / divisor:.{decimals}f}-{figure.max / divisor:.{decimals}f}]"
