"""The harness reads what the buildpack writes and prints with these parsers; what they make of
each form of it, without Docker."""

from __future__ import annotations

import pytest

from harness.parsers import parse_build_info, parse_check, parse_report, well_formed_utf8
from harness.paths import (APP_PREFIX, BIN, BUILD_INFO, DEFAULT_VERSION, FIXTURE_TARBALLS, LIBRARY, LIBRARY_FILE,
                           SHIM, SNAPSHOT_CHECKSUM, fixture_path, served_source_config, slug_relative, source_config)

# As lib/install.sh writes it: KEY=VALUE lines, control characters of values made spaces.
BUILD_INFO_TEXT = """version=5.3.0
source_sha256=2db82d1e7119df3e71b7640219b6dfe84789bc0537983c3b7ac4f7189aecfeaa
default_malloc_conf=narenas:2,background_thread:true,dirty_decay_ms:1000
configure_options=--disable-static --with-malloc-conf=a=b
stack=heroku-24
built_at=2026-01-02T03:04:05Z
"""


def test_build_info_is_a_dict_of_its_key_value_lines():
    info = parse_build_info(BUILD_INFO_TEXT)
    assert info["version"] == "5.3.0"
    assert info["default_malloc_conf"] == "narenas:2,background_thread:true,dirty_decay_ms:1000"
    assert info["built_at"] == "2026-01-02T03:04:05Z"
    assert len(info) == 6


def test_a_build_info_value_keeps_every_equals_sign_after_the_first():
    assert parse_build_info(BUILD_INFO_TEXT)["configure_options"] == "--disable-static --with-malloc-conf=a=b"


@pytest.mark.parametrize("text", ["", "\n", "not a fact\n"])
def test_build_info_without_key_value_lines_has_no_facts(text):
    assert parse_build_info(text) == {}


def test_an_empty_build_info_value_is_an_empty_string():
    assert parse_build_info("tuning=\n") == {"tuning": ""}


# As bin/report prints it (lib/report.sh): YAML "key: value" lines.
REPORT_TEXT = """jemalloc_version: "5.3.0"
source_url: "http://***@127.0.0.1:8000/ok/x.tar.gz?X-Amz-Signature=***"
source_sha256: "2db82d1e7119df3e71b7640219b6dfe84789bc0537983c3b7ac4f7189aecfeaa"
cache_hit: false
profiling: true
build_seconds: 42
failure_reason: "JEMALLOC_VERSION 'x: y' is not a version number."
"""


def test_a_report_is_a_dict_of_typed_values():
    facts = parse_report(REPORT_TEXT)
    assert facts["jemalloc_version"] == "5.3.0"
    assert facts["cache_hit"] is False and facts["profiling"] is True
    assert facts["build_seconds"] == 42
    assert facts["source_url"] == "http://***@127.0.0.1:8000/ok/x.tar.gz?X-Amz-Signature=***"
    assert facts["failure_reason"] == "JEMALLOC_VERSION 'x: y' is not a version number."


@pytest.mark.parametrize("text", ["", "\n"])
def test_a_report_that_printed_nothing_has_no_facts(text):
    assert parse_report(text) == {}


def test_a_report_that_is_not_key_value_lines_is_an_error():
    with pytest.raises(ValueError):
        parse_report("- a list\n- not facts\n")


# As jemalloc-check --json prints it.
CHECK_JSON = ('{"active": true, "reason": "on: JEMALLOC_ENABLED=true", "mapped": "/app/vendor/jemalloc/lib/libjemalloc.so.2",'
              ' "settings": {"JEMALLOC_PROCESS_TYPES": null}, "processes": []}\n')


def test_a_check_answer_is_its_json_object_with_the_exit_status_and_stderr():
    answer = parse_check(CHECK_JSON, 0, "")
    assert answer == {"active": True, "reason": "on: JEMALLOC_ENABLED=true", "mapped": LIBRARY_FILE,
                      "settings": {"JEMALLOC_PROCESS_TYPES": None}, "processes": []}
    assert (answer.returncode, answer.stderr) == (0, "")
    assert isinstance(answer, dict)


def test_a_check_answer_keeps_a_failing_exit_status():
    answer = parse_check('{"active": false}', 1, " !     warning\n")
    assert answer["active"] is False
    assert (answer.returncode, answer.stderr) == (1, " !     warning\n")


@pytest.mark.parametrize("stdout", ["", "jemalloc is on: JEMALLOC_ENABLED=true\n", "[1, 2]"])
def test_a_check_that_printed_no_json_object_fails_the_test_with_what_it_printed(stdout):
    with pytest.raises(AssertionError, match="jemalloc-check --json printed"):
        parse_check(stdout, 2, "usage")


# Bytes as jemalloc-check shows them.

@pytest.mark.parametrize(("value", "shown"), [
    (b"", ""), (b"caf\xc3\xa9", "caf\u00e9"), (b"\xf0\x9f\x98\x80", "\U0001f600"), (b"a\x01\x7f", "a\x01\x7f"),
    (b"x\xe9\xff\xc3", "x\ufffd\ufffd\ufffd"), (b"\xe2\x82", "\ufffd\ufffd"), (b"\xe2\x82\xe2\x82\xac", "\ufffd\ufffd\u20ac"),
    (b"\xed\xa0\x80", "\ufffd" * 3), (b"\xc0\xaf", "\ufffd" * 2), (b"\xf4\x90\x80\x80", "\ufffd" * 4),
])
def test_each_byte_that_is_not_part_of_a_utf8_sequence_is_replaced_on_its_own(value, shown):
    assert well_formed_utf8(value) == shown
    assert well_formed_utf8(value, "?") == shown.replace("\ufffd", "?")


# The slug's paths and the source config, as the tests and benchmarks import them.

def test_the_slug_paths_are_where_the_buildpack_installs():
    assert (APP_PREFIX, LIBRARY, LIBRARY_FILE, BIN, SHIM, BUILD_INFO) == (
        "/app/vendor/jemalloc", "/app/vendor/jemalloc/lib/libjemalloc.so", "/app/vendor/jemalloc/lib/libjemalloc.so.2",
        "/app/vendor/jemalloc/bin", "/app/.profile.d/jemalloc.sh", "/app/vendor/jemalloc/build-info")


def test_a_slug_path_relative_to_the_app_is_its_place_in_a_build_dir():
    assert slug_relative(LIBRARY_FILE) == "vendor/jemalloc/lib/libjemalloc.so.2"
    assert slug_relative(SHIM) == ".profile.d/jemalloc.sh"
    for outside in ("/app", "/application/x", "vendor/jemalloc"):
        with pytest.raises(ValueError):
            slug_relative(outside)


class FakeServer:
    """The part of harness.sources.SourceServer the config builders use."""

    def __init__(self):
        self.extra_files: dict[str, bytes] = {}

    def url(self, name: str, fault: str = "ok") -> str:
        return f"http://127.0.0.1:1/{fault}/{name}"


def test_source_config_names_a_fixture_and_pins_only_the_snapshots_checksum():
    server = FakeServer()
    assert source_config(server) == {"JEMALLOC_VERSION": DEFAULT_VERSION,
                                     "JEMALLOC_SOURCE_URL": f"http://127.0.0.1:1/ok/{FIXTURE_TARBALLS[DEFAULT_VERSION]}"}
    assert source_config(server, "5.3.1")["JEMALLOC_CHECKSUM"] == SNAPSHOT_CHECKSUM
    assert source_config(server, "5.2.1", "404")["JEMALLOC_SOURCE_URL"] == "http://127.0.0.1:1/404/jemalloc-5.2.1.tar.bz2"


def test_source_config_extra_config_vars_come_last_and_win():
    config = source_config(FakeServer(), JEMALLOC_VERSION="5.9.9", JEMALLOC_TUNING="none")
    assert config["JEMALLOC_VERSION"] == "5.9.9" and config["JEMALLOC_TUNING"] == "none"


def test_served_source_config_serves_the_body_with_its_own_checksum():
    server = FakeServer()
    config = served_source_config(server, "made.tar.gz", b"body", JEMALLOC_PROFILING="true")
    assert server.extra_files == {"made.tar.gz": b"body"}
    assert config == {"JEMALLOC_VERSION": DEFAULT_VERSION, "JEMALLOC_SOURCE_URL": "http://127.0.0.1:1/ok/made.tar.gz",
                      "JEMALLOC_CHECKSUM": "230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5",
                      "JEMALLOC_PROFILING": "true"}


def test_every_fixture_of_the_catalogue_is_on_this_machine():
    for version in FIXTURE_TARBALLS:
        assert fixture_path(version).is_file(), fixture_path(version)


# --- harness.compiles: the compiles a run made ------------------------------------------------

def test_a_build_that_compiled_is_recorded_and_a_cached_one_is_not():
    from harness.compiles import RECORDED, Compile, record

    before = len(RECORDED)
    record("classic", "heroku-24", "-----> jemalloc 5.3.0\n-----> Using cached build 0123456789ab\n", 1.0)
    assert len(RECORDED) == before
    record("classic", "heroku-24", "-----> jemalloc 5.3.0\n-----> Building jemalloc 5.3.0 (cache key 0123456789ab)\n", 61.0)
    assert RECORDED[-1] == Compile("classic", "heroku-24", "5.3.0", "0123456789ab", 61.0, RECORDED[-1].test)
    del RECORDED[before:]


def test_the_summary_counts_compiles_and_names_each_build_compiled_twice():
    from harness.compiles import Compile, summary

    compiles = [Compile("classic", "heroku-24", "5.3.0", "aaaa", 60.0, "test_a"),
                Compile("classic", "heroku-24", "5.3.0", "aaaa", 30.0, "test_b"),
                Compile("cnb", "heroku-24", "5.3.0", "aaaa", 90.0, "test_c")]
    assert summary(compiles) == [
        "3 compiles of 2 distinct builds, 3.0 minutes in all",
        "  classic heroku-24 5.3.0 (cache key aaaa) 2 times: test_a 60s, test_b 30s",
    ]
    assert summary([]) == []


def test_a_workers_compiles_reach_the_controller_unchanged():
    from harness.compiles import RECORDED, Compile, add_json, to_json

    before = len(RECORDED)
    compiled = Compile("cnb", "heroku-26", "5.3.1", "bbbb", 42.5, "tests/test_cnb.py::test_x[heroku-26]")
    RECORDED.append(compiled)
    shipped = to_json()
    del RECORDED[before:]
    add_json(shipped)
    assert RECORDED[-1] == compiled
    del RECORDED[before:]


def test_a_stacks_tests_are_one_unit_of_work_and_a_test_of_no_stack_goes_with_its_module():
    from harness.scheduling import scope_of

    assert scope_of("tests/test_shim.py::test_x[heroku-24]") == "heroku-24"
    assert scope_of("tests/test_faults.py::test_cache[heroku-24-read-only]") == "heroku-24"
    assert scope_of("tests/test_cnb.py::TestRebuild::test_y[heroku-26-5.3.0]") == "heroku-26"
    assert scope_of("tests/test_arm64.py::test_z[debian-trixie-arm64]") == "debian-trixie-arm64"
    # A parameter that only begins like a stack's name is not that stack.
    assert scope_of("tests/test_soak.py::test_w[heroku-240]") == "tests/test_soak.py"
    assert scope_of("tests/test_soak.py::test_w[puma]") == "tests/test_soak.py"
    assert scope_of("tests/test_lint.py::test_v") == "tests/test_lint.py"
