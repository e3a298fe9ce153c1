"""jemalloc is built with memory-oriented defaults (JEMALLOC_TUNING=memory), which the app's
MALLOC_CONF always overrides, key by key; JEMALLOC_TUNING=none keeps jemalloc's own."""

import re

import pytest

from harness.app import BUILDPACK_MOUNT
from harness.docker import run_once
from harness.images import buildpack_image
from harness.stacks import BUILD_LOGIC_STACKS

TUNED = {"narenas": "2", "background_thread": "true", "dirty_decay_ms": "1000"}
# jemalloc prints its options at exit; bash, because coreutils programs close stderr first.
SHOW_OPTIONS = "MALLOC_CONF=${MALLOC_CONF:+$MALLOC_CONF,}stats_print:true bash -c : 2>&1 >/dev/null"


def options_in_force(app, build, config) -> tuple[dict[str, str], str]:
    result = app.run(build, SHOW_OPTIONS, {"JEMALLOC_ENABLED": "true", **config})
    assert result.returncode == 0, result.output
    options = dict(re.findall(r"^\s+opt\.(\w+): (\S+)", result.stdout, re.MULTILINE))
    assert options, result.stdout[:2000]
    built_in = re.search(r'^\s+config\.malloc_conf: "(.*)"$', result.stdout, re.MULTILINE)
    return options, built_in[1] if built_in else ""


def test_the_default_build_says_it_is_tuned_for_memory(built_app):
    _, build = built_app
    assert "tuned for memory" in build.stdout.splitlines()[0]
    assert build.build_info()["default_malloc_conf"] == "narenas:2,background_thread:true,dirty_decay_ms:1000"


def test_the_memory_defaults_are_in_force_without_any_malloc_conf(built_app):
    app, build = built_app
    options, built_in = options_in_force(app, build, {})
    assert built_in == "narenas:2,background_thread:true,dirty_decay_ms:1000"
    assert {key: options[key] for key in TUNED} == TUNED


def test_the_apps_malloc_conf_wins_key_by_key(built_app):
    app, build = built_app
    options, _ = options_in_force(app, build, {"MALLOC_CONF": "narenas:4,dirty_decay_ms:5000"})
    assert options["narenas"] == "4"
    assert options["dirty_decay_ms"] == "5000"
    # A key the app did not set keeps the buildpack's value.
    assert options["background_thread"] == "true"


def test_the_apps_malloc_conf_can_switch_a_default_off(built_app):
    app, build = built_app
    options, _ = options_in_force(app, build, {"MALLOC_CONF": "background_thread:false"})
    assert options["background_thread"] == "false"


def test_no_dyno_reports_an_invalid_conf_pair(built_app):
    app, build = built_app
    result = app.run(build, "ls / >/dev/null; bash -c :", {"JEMALLOC_ENABLED": "true"})
    assert result.stderr == ""


@pytest.mark.stacks(*BUILD_LOGIC_STACKS)
def test_tuning_none_builds_with_jemallocs_own_defaults(app, source_config):
    build = app.compile(source_config("5.2.1", JEMALLOC_TUNING="none"))
    assert build.succeeded, build.output
    assert "tuned" not in build.stdout
    options, built_in = options_in_force(app, build, {})
    assert built_in == ""
    assert options["background_thread"] == "false"
    assert options["narenas"] != "2"
    # No fork helper either, and jemalloc-check says so rather than "on".
    answer = app.check(build, config={"JEMALLOC_ENABLED": "true"})
    assert answer["settings"]["background_thread_after_fork"] == "absent", answer
    # JEMALLOC_METRICS does not depend on the tuning: its figures come from this build too.
    result = app.run(build, "sleep 1.6", {"JEMALLOC_ENABLED": "true", "JEMALLOC_METRICS": "1"})
    assert result.returncode == 0, result.output
    assert re.search(r"^jemalloc source=run\.1 pid=\d+ comm=sleep sample#jemalloc\.allocated=", result.stderr,
                     re.MULTILINE), result.stderr


def test_a_bad_tuning_value_fails_the_build(app, source_config):
    build = app.compile(source_config(JEMALLOC_TUNING="fast"))
    assert not build.succeeded
    assert "JEMALLOC_TUNING 'fast'" in build.stderr


@pytest.mark.parametrize(("version", "expected"), [("4.5.0", ""), ("3.6.0", ""), ("5.0.1", TUNED), ("5.3.1", TUNED)])
def test_releases_before_5_get_no_options_they_would_reject(stack_images, version, expected):
    # jemalloc 4.x rejects background_thread and dirty_decay_ms with "Invalid conf pair" in
    # every process: the recipe (the real lib/build.sh) must leave them out for those releases.
    result = run_once(buildpack_image(stack_images), "bash", "-c",
                      f"source {BUILDPACK_MOUNT}/lib/build.sh && build::default_malloc_conf {version} memory")
    conf = result.stdout.strip()
    assert conf == (",".join(f"{key}:{value}" for key, value in expected.items()) if expected else "")
