"""The preload rules as one table of cases, for every tier that checks them.

The unit tier (tests/unit/test_preload_rules.py) feeds each case to the profile.d shim under bash
and dash, to the CNB exec.d program and to jemalloc-check, and checks that they agree with the
table and so with each other; the stack tier (test_shim.py) runs the process-type cases in real
dynos. In the values, {library} stands for the build's lib/libjemalloc.so and {app_library} for a
library the app preloads itself.
"""

from __future__ import annotations

from dataclasses import dataclass

ON_UNLISTED = "on: LD_PRELOAD contains the library although {rule} (jemalloc.sh, or LD_PRELOAD set by hand)"


@dataclass(frozen=True)
class Case:
    """The environment a process starts with (a name left out is unset); whether the rules
    preload jemalloc (on); what the shim leaves in LD_PRELOAD (None: unset); the variable its one
    warning is about (None: it warns about nothing); the reason that jemalloc-check gives in the
    environment the shim leaves; and how the rules read JEMALLOC_BACKGROUND_THREAD_AFTER_FORK
    (on, off or invalid), as jemalloc-check reports it."""

    id: str
    env: dict[str, str]
    on: bool
    preload: str | None
    reason: str
    warning: str | None = None
    after_fork: str = "on"

    @property
    def arena_max(self) -> str | None:
        """MALLOC_ARENA_MAX after the shim: 2 when on, unless the app set it."""
        return self.env.get("MALLOC_ARENA_MAX", "2" if self.on else None)

    @property
    def active(self) -> bool:
        """What jemalloc-check says: whether the library ends up mapped."""
        return self.reason.startswith("on: ")


# (JEMALLOC_PROCESS_TYPES, DYNO or None for unset, preloaded): JEMALLOC_ENABLED=true.
PROCESS_TYPE_CASES: list[tuple[str, str | None, bool]] = [
    ("worker,clock", "worker.1", True),
    ("worker,clock", "web.1", False),
    ("worker,clock", "run.1", False),
    (" web , run ", "run.1", True),
    ("release", "release.1", True),
    ("", "web.1", True),
    (" , ,", "web.1", True),
    ("web", "run.1234", False),
    ("worker web", "web-12a34b56d-e78f9", True),
    ("worker", "web-12a34b56d-e78f9", False),
    ("my-worker", "my-worker-5f6d7c8b9-x1y2z", True),
    ("worker", None, False),
]


def _process_type_case(types: str, dyno: str | None, preloaded: bool) -> Case:
    listed = ",".join(token for token in types.replace(",", " ").split())
    process_type = "" if dyno is None else dyno.split(".")[0] if "." in dyno else dyno.rsplit("-", 2)[0]
    env = {"JEMALLOC_ENABLED": "true", "JEMALLOC_PROCESS_TYPES": types, **({} if dyno is None else {"DYNO": dyno})}
    if not listed:
        reason = "on: JEMALLOC_ENABLED=true"
    elif preloaded:
        reason = f"on: JEMALLOC_ENABLED=true and process type {process_type} is in JEMALLOC_PROCESS_TYPES ({listed})"
    elif dyno is None:
        reason = f"off: DYNO is unset, so no process type matches JEMALLOC_PROCESS_TYPES ({listed})"
    else:
        reason = f"off: process type {process_type} is not in JEMALLOC_PROCESS_TYPES ({listed})"
    return Case(f"types[{types}]-dyno[{dyno}]", env, preloaded, "{library}" if preloaded else None, reason)


def _enabled_case(value: str | None, expected: str) -> Case:
    env = {"DYNO": "web.1", **({} if value is None else {"JEMALLOC_ENABLED": value})}
    trimmed = (value or "").strip(" ")
    if expected == "on":
        return Case(f"enabled[{value}]", env, True, "{library}", f"on: JEMALLOC_ENABLED={trimmed}")
    if expected == "invalid":
        return Case(f"enabled[{value}]", env, False, None, f"off: JEMALLOC_ENABLED='{value}' is not understood",
                    warning="JEMALLOC_ENABLED")
    if value is None:
        return Case("enabled[unset]", env, False, None, "off: JEMALLOC_ENABLED is unset")
    if not trimmed:
        return Case(f"enabled[{value}]", env, False, None, "off: JEMALLOC_ENABLED is empty")
    return Case(f"enabled[{value}]", env, False, None, f"off: JEMALLOC_ENABLED={trimmed}")


ENABLED_VALUES: list[tuple[str | None, str]] = [
    ("true", "on"), ("TRUE", "on"), ("1", "on"), ("yes", "on"), ("On", "on"), ("  true ", "on"),
    (None, "off"), ("", "off"), ("   ", "off"), ("false", "off"), ("0", "off"), ("no", "off"), ("OFF", "off"),
    (" No ", "off"),
    ("maybe", "invalid"), ("2", "invalid"), ("enabled", "invalid"), ("tr ue", "invalid"), ("\ttrue", "invalid"),
]

ENABLED = {"JEMALLOC_ENABLED": "true", "DYNO": "web.1"}

# JEMALLOC_BACKGROUND_THREAD_AFTER_FORK (None for unset) and how the rules read it: the parser of
# JEMALLOC_ENABLED, but on when unset or empty, and what it does not understand acts as on too.
AFTER_FORK_VALUES: list[tuple[str | None, str]] = [
    (None, "on"), ("", "on"), ("true", "on"), ("FALSE", "off"), (" false ", "off"), ("off", "off"), ("No", "off"),
    ("0", "off"), ("1", "on"), ("bogus", "invalid"),
]


def _after_fork_case(value: str | None, expected: str) -> Case:
    """With jemalloc on: the shim warns, once, exactly about a value it does not understand."""
    env = {**ENABLED, **({} if value is None else {"JEMALLOC_BACKGROUND_THREAD_AFTER_FORK": value})}
    return Case(f"after-fork[{'unset' if value is None else value}]", env, True, "{library}", "on: JEMALLOC_ENABLED=true",
                warning="JEMALLOC_BACKGROUND_THREAD_AFTER_FORK" if expected == "invalid" else None, after_fork=expected)


# With jemalloc off, nothing is preloaded that could fork: no warning, though jemalloc-check
# still says how the value reads.
AFTER_FORK_OFF_CASES: list[Case] = [
    Case("after-fork[bogus]-jemalloc-unset", {"DYNO": "web.1", "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK": "bogus"},
         False, None, "off: JEMALLOC_ENABLED is unset", after_fork="invalid"),
    Case("after-fork[bogus]-type-unlisted",
         {**ENABLED, "JEMALLOC_PROCESS_TYPES": "worker", "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK": "bogus"}, False,
         None, "off: process type web is not in JEMALLOC_PROCESS_TYPES (worker)", after_fork="invalid"),
    Case("after-fork[off]-jemalloc-false", {"JEMALLOC_ENABLED": "false", "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK": "off"},
         False, None, "off: JEMALLOC_ENABLED=false", after_fork="off"),
]
# JEMALLOC_METRICS (None for unset) and how the rules read it: off, an interval in seconds, or
# invalid (off too, with one warning). src/metrics.c must read it the same way (test_metrics.py).
METRICS_VALUES: list[tuple[str | None, str]] = [
    (None, "off"), ("", "off"), ("false", "off"), (" Off ", "off"), ("no", "off"), ("0", "off"), ("000", "off"),
    ("true", "60"), (" TRUE ", "60"), ("yes", "60"), ("On", "60"), ("1", "1"), ("30", "30"), ("0060", "60"),
    ("3600", "3600"), ("3601", "invalid"), ("99999", "invalid"), ("-5", "invalid"), ("1.5", "invalid"),
    ("60s", "invalid"), ("1 0", "invalid"), ("bogus", "invalid"),
]


def _metrics_case(value: str | None, expected: str) -> Case:
    """With jemalloc on: the shim warns, once, exactly about a value it does not understand."""
    env = {**ENABLED, **({} if value is None else {"JEMALLOC_METRICS": value})}
    return Case(f"metrics[{'unset' if value is None else value}]", env, True, "{library}", "on: JEMALLOC_ENABLED=true",
                warning="JEMALLOC_METRICS" if expected == "invalid" else None)


PRELOAD_CASES: list[Case] = [
    Case("preload[app]", {**ENABLED, "LD_PRELOAD": "{app_library}"}, True, "{library}:{app_library}",
         "on: JEMALLOC_ENABLED=true"),
    Case("preload[spaces-empties-and-ours]", {**ENABLED, "LD_PRELOAD": " {app_library}::{library} "}, True,
         "{library}:{app_library}", "on: JEMALLOC_ENABLED=true"),
    Case("preload[our-other-name]", {**ENABLED, "LD_PRELOAD": "{library}.2 {app_library}"}, True,
         "{library}:{app_library}", "on: JEMALLOC_ENABLED=true"),
    Case("preload[ours-already]", {**ENABLED, "LD_PRELOAD": "{library}"}, True, "{library}", "on: JEMALLOC_ENABLED=true"),
    Case("preload[separators-only]", {**ENABLED, "LD_PRELOAD": ": :"}, True, "{library}", "on: JEMALLOC_ENABLED=true"),
    Case("preload[empty]", {**ENABLED, "LD_PRELOAD": ""}, True, "{library}", "on: JEMALLOC_ENABLED=true"),
    Case("preload[app-kept-when-off]", {"DYNO": "web.1", "LD_PRELOAD": "{app_library}"}, False, "{app_library}",
         "off: JEMALLOC_ENABLED is unset"),
    Case("preload[ours-by-hand-when-off]", {"DYNO": "web.1", "LD_PRELOAD": "{library}"}, False, "{library}",
         ON_UNLISTED.format(rule="JEMALLOC_ENABLED is unset")),
    Case("preload[ours-by-hand-unlisted]",
         {**ENABLED, "JEMALLOC_PROCESS_TYPES": "worker", "LD_PRELOAD": "{app_library}:{library}"}, False,
         "{app_library}:{library}",
         ON_UNLISTED.format(rule="process type web is not in JEMALLOC_PROCESS_TYPES (worker)")),
    Case("arena[app-value-kept]", {**ENABLED, "MALLOC_ARENA_MAX": "4"}, True, "{library}", "on: JEMALLOC_ENABLED=true"),
    Case("arena[app-empty-kept]", {**ENABLED, "MALLOC_ARENA_MAX": ""}, True, "{library}", "on: JEMALLOC_ENABLED=true"),
]

CASES: list[Case] = (
    [_enabled_case(value, expected) for value, expected in ENABLED_VALUES]
    + [_process_type_case(*case) for case in PROCESS_TYPE_CASES]
    + PRELOAD_CASES
    + [_after_fork_case(value, expected) for value, expected in AFTER_FORK_VALUES]
    + AFTER_FORK_OFF_CASES
    + [_metrics_case(value, expected) for value, expected in METRICS_VALUES]
    + [Case("metrics[bogus]-jemalloc-unset", {"DYNO": "web.1", "JEMALLOC_METRICS": "bogus"}, False, None,
            "off: JEMALLOC_ENABLED is unset")]
)


def fill(value: str | None, library: str, app_library: str) -> str | None:
    """VALUE with {library} and {app_library} replaced."""
    if value is None:
        return None
    return value.replace("{library}", library).replace("{app_library}", app_library)
