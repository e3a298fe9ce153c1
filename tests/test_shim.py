"""The profile.d shim: when it preloads jemalloc, how it treats the app's environment, and that
it can never break a dyno."""

import pytest

from harness.paths import BIN, LIBRARY, LIBRARY_FILE, SHIM, WRAPPER, slug_relative
from rules_cases import PROCESS_TYPE_CASES

# A library every stack's run image has, to stand for one the app preloads itself.
APP_LIBRARY = "/lib/x86_64-linux-gnu/libz.so.1"
SHOW = 'echo "LD_PRELOAD=${LD_PRELOAD-unset}"; echo "MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX-unset}"; grep -c libjemalloc /proc/self/maps || true'


def shown(stdout: str) -> tuple[str, str, int]:
    lines = stdout.splitlines()
    return lines[0].split("=", 1)[1], lines[1].split("=", 1)[1], int(lines[2])


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "On"])
def test_true_values_preload_jemalloc(built_app, value):
    app, build = built_app
    result = app.run(build, SHOW, {"JEMALLOC_ENABLED": value})
    preload, arena_max, mappings = shown(result.stdout)
    assert preload == LIBRARY
    assert arena_max == "2"
    assert mappings > 0
    assert result.stderr == ""


@pytest.mark.parametrize("value", [None, "", "false", "0", "no", "OFF"])
def test_false_values_leave_the_dyno_alone(built_app, value):
    app, build = built_app
    config = {} if value is None else {"JEMALLOC_ENABLED": value}
    result = app.run(build, SHOW, config)
    assert shown(result.stdout) == ("unset", "unset", 0)
    assert result.stderr == ""


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_other_values_leave_it_off_with_one_warning(built_app, value):
    app, build = built_app
    result = app.run(build, SHOW, {"JEMALLOC_ENABLED": value})
    assert shown(result.stdout) == ("unset", "unset", 0)
    warning = result.stderr.splitlines()
    assert len(warning) == 1 and value in warning[0] and "JEMALLOC_ENABLED" in warning[0], result.stderr
    assert result.returncode == 0


def test_an_ld_preload_set_by_the_app_is_kept_after_jemalloc(built_app):
    app, build = built_app
    config = {"JEMALLOC_ENABLED": "true", "LD_PRELOAD": f" {APP_LIBRARY}::{LIBRARY} "}
    result = app.run(build, SHOW + f"; grep -c {APP_LIBRARY.rsplit('/', 1)[1]} /proc/self/maps", config)
    assert shown(result.stdout)[0] == f"{LIBRARY}:{APP_LIBRARY}"
    assert int(result.stdout.splitlines()[3]) > 0
    assert result.stderr == ""


def test_a_malloc_arena_max_set_by_the_app_wins(built_app):
    app, build = built_app
    result = app.run(build, SHOW, {"JEMALLOC_ENABLED": "true", "MALLOC_ARENA_MAX": "4"})
    assert shown(result.stdout)[1] == "4"


def test_a_missing_library_leaves_ld_preload_alone_with_one_warning(built_app):
    app, build = built_app
    slug = app.slug(build)
    (slug / slug_relative(LIBRARY_FILE)).unlink()
    result = app.run(slug, SHOW + "; ls / >/dev/null && echo still-runs", {"JEMALLOC_ENABLED": "true"})
    assert shown(result.stdout)[0] == "unset"
    assert "still-runs" in result.stdout
    warning = result.stderr.splitlines()
    assert len(warning) == 1 and "missing" in warning[0], result.stderr
    assert "ld.so" not in result.stderr and "cannot be preloaded" not in result.stderr


SOURCE_TWICE = f"""
set -eu
before_options="$(set +o)"
. {SHIM}
once="$(env | sort)"
. {SHIM}
twice="$(env | sort)"
[ "$once" = "$twice" ] && echo idempotent
[ "$before_options" = "$(set +o)" ] && echo options-unchanged
set | grep -q __jemalloc || echo no-leftovers
echo "LD_PRELOAD=$LD_PRELOAD"
echo "PATH=$PATH"
"""


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_sourcing_twice_under_set_eu_is_safe_and_idempotent(built_app, shell):
    app, build = built_app
    dyno = app.boot(build, "sleep 60", {"JEMALLOC_ENABLED": "true", "LD_PRELOAD": APP_LIBRARY})
    result = dyno.exec(f"{shell} -s <<'SCRIPT'\n{SOURCE_TWICE}\nSCRIPT")
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == ["idempotent", "options-unchanged", "no-leftovers"], result.output
    assert lines[3] == f"LD_PRELOAD={LIBRARY}:{APP_LIBRARY}"
    assert lines[4].split("=", 1)[1].split(":").count(BIN) == 1
    assert result.stderr == ""


def test_the_wrapper_preloads_one_command_whatever_jemalloc_enabled_says(built_app):
    app, build = built_app
    result = app.run(build, "jemalloc.sh bash -c 'echo \"LD_PRELOAD=$LD_PRELOAD\"; grep -c libjemalloc /proc/self/maps'",
                     {"LD_PRELOAD": APP_LIBRARY})
    assert result.stdout.splitlines()[0] == f"LD_PRELOAD={LIBRARY}:{APP_LIBRARY}"
    assert int(result.stdout.splitlines()[1]) > 0
    assert result.stderr == ""


def test_jemalloc_bin_dir_is_on_path_once_in_every_dyno(built_app):
    app, build = built_app
    result = app.run(build, 'echo "$PATH"; command -v jemalloc.sh')
    path, wrapper = result.stdout.splitlines()
    assert path.split(":").count(BIN) == 1
    assert wrapper == WRAPPER


# The process-type cases of the table that the unit tier runs everywhere (tests/rules_cases.py),
# those with a classic DYNO ("worker.1"), which a dyno of the harness gets from its process type.
@pytest.mark.parametrize(
    ("process_types", "process_type", "preloaded"),
    [(types, dyno.removesuffix(".1"), preloaded) for types, dyno, preloaded in PROCESS_TYPE_CASES
     if dyno is not None and dyno.endswith(".1")],
)
def test_process_types_choose_which_dynos_get_jemalloc(built_app, process_types, process_type, preloaded):
    app, build = built_app
    config = {"JEMALLOC_ENABLED": "true", "JEMALLOC_PROCESS_TYPES": process_types}
    result = app.run(build, SHOW, config, process_type=process_type)
    preload, _, mappings = shown(result.stdout)
    assert (preload == LIBRARY) is preloaded
    assert (mappings > 0) is preloaded
    assert result.stderr == ""
