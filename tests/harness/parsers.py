"""Parsers of what the buildpack prints or writes, as pure functions of text: the objects that
read it (Build.build_info(), App.report(), Dyno.check()...) call these, and the unit tier tests
them without Docker (tests/unit/test_harness_parsers.py)."""

from __future__ import annotations

import json

import yaml


def parse_build_info(text: str) -> dict[str, str]:
    """vendor/jemalloc/build-info (and a CNB layer's build-info): KEY=VALUE lines, the value
    everything after the first '='. Lines without '=' are not facts and are left out."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def parse_report(text: str) -> dict:
    """bin/report's output: YAML "key: value" lines, as Heroku reads them (values typed: true
    is True, a quoted string a string); nothing printed is no facts."""
    facts = yaml.safe_load(text)
    if facts is None:
        return {}
    if not isinstance(facts, dict):
        raise ValueError(f"bin/report printed no mapping: {text[:500]!r}")
    return facts


class CheckAnswer(dict):
    """jemalloc-check --json's answer: its JSON object, with the exit status and stderr beside it."""

    def __init__(self, data: dict, returncode: int, stderr: str = ""):
        super().__init__(data)
        self.returncode = returncode
        self.stderr = stderr


def parse_check(stdout: str, returncode: int = 0, stderr: str = "") -> CheckAnswer:
    """jemalloc-check --json's stdout: one JSON object (with the exit status and stderr it came with)."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"jemalloc-check --json printed no JSON ({error}):\n{stdout[:2000]}\n{stderr[:2000]}") from None
    if not isinstance(data, dict):
        raise AssertionError(f"jemalloc-check --json printed {type(data).__name__}, not an object: {stdout[:2000]}")
    return CheckAnswer(data, returncode, stderr)


def well_formed_utf8(value: bytes, replacement: str = "\ufffd") -> str:
    """VALUE as jemalloc-check shows bytes that may not be text: decoded, with each byte that is not
    part of a well-formed UTF-8 sequence replaced by REPLACEMENT, byte by byte (where Python's
    "replace" gives one U+FFFD for a sequence cut short, this gives one per byte)."""
    out, i = [], 0
    while i < len(value):
        for length in (1, 2, 3, 4):
            try:
                char = value[i:i + length].decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append(char)
            i += length
            break
        else:
            out.append(replacement)
            i += 1
    return "".join(out)
