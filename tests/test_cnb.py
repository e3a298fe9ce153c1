"""Heroku Fir: the buildpack as a Cloud Native Buildpack, built by the real lifecycle (v0.21.12,
Fir's) in builder images made from the heroku-24 and heroku-26 build images, exported into the
Docker engine as an app image, and run as Fir runs dynos: `docker run` of the image through its
own entrypoint, `launcher <cmd>` for one-off commands (harness/cnb.py, harness/lifecycle.py).

What a process runs on is read from the kernel (/proc/PID/maps) and from jemalloc itself.
"""

from __future__ import annotations

import re
import time
import tomllib

import pytest

from harness.cnb import LAYER, LIBRARY, LIBRARY_FILE, CnbApp
from harness.lifecycle import BUILDPACK_ID, OTHER_BUILDPACK, PROCFILE_BUILDPACK

# Heroku Fir runs these stacks only; the suite is not generated for the others.
pytestmark = pytest.mark.stacks("heroku-24", "heroku-26")
ENABLED = {"JEMALLOC_ENABLED": "true"}
# A library every stack's run image has, to stand for one the app preloads itself.
APP_LIBRARY = "/lib/x86_64-linux-gnu/libz.so.1"
MISSING_WARNING = f" !     jemalloc: {LIBRARY} is missing, so jemalloc is not preloaded"
STEP_PREFIXES = ("-----> ", "       ")
# What the lifecycle's builder says when a buildpack's bin/build exits 1, and its exit status.
BUILD_FAILED = "ERROR: failed to build: exit status 1\n"
FAILED_BUILD_STATUS = 51


@pytest.fixture(scope="module")
def cnb_app(stack_images):
    with CnbApp(stack_images) as app:
        yield app


@pytest.fixture(scope="module")
def cnb_build(cnb_app, source_config):
    build = cnb_app.build(source_config())
    assert build.succeeded, build.output
    # The cache as the first build left it, for the apps that start from it (other_build).
    cnb_app.first_cache = cnb_app.save_cache("first")
    return build


def reported_version(stdout: str) -> str:
    match = re.search(r"^jemalloc version \(stats_print\): (.*)$", stdout, re.MULTILINE)
    assert match, f"the probe printed no version line:\n{stdout}"
    return match[1]


def short_key(build) -> str:
    return build.layers["jemalloc"].metadata["cache_key"][:12]


def assert_heroku_output(build) -> None:
    lines = build.stdout.splitlines()
    assert lines and all(line.startswith(STEP_PREFIXES) for line in lines), build.stdout
    assert build.stderr == ""


def assert_failed_cleanly(failed, message: str) -> None:
    """bin/build exited 1, and the build log is the buildpack's steps, then its error: the
    lines of output::error, MESSAGE first. (The lifecycle shows a buildpack's stdout and stderr
    as one stream.)"""
    assert failed.returncode == FAILED_BUILD_STATUS and failed.buildpack_status == 1, failed.output
    assert failed.stderr == BUILD_FAILED
    lines = failed.stdout.splitlines()
    first_error = next(index for index, line in enumerate(lines) if not line.startswith(STEP_PREFIXES))
    assert all(line.startswith(STEP_PREFIXES) for line in lines[:first_error]), failed.stdout
    assert lines[first_error] == message, failed.stdout
    assert all(line.startswith(" !     ") for line in lines[first_error:]), failed.stdout


def assert_nothing_left(failed) -> None:
    """No jemalloc layer (and no layer metadata) left for the export."""
    layers = failed.layer_files().parent
    assert not layers.exists() or list(layers.iterdir()) == []
    assert "exporter" not in failed.phases


# --- build --------------------------------------------------------------------------------

def test_detect_passes_without_a_plan_and_the_build_makes_a_launch_and_cache_layer(cnb_build, stack):
    # The lifecycle calls bin/detect with two arguments (platform dir, plan path); it answers
    # as a CNB: passes, writes no plan, prints nothing (the detector, at debug level, shows
    # a buildpack's output under "======== Output: <id>").
    assert cnb_build.detect.returncode == 0
    assert f"pass: {BUILDPACK_ID}@1.0.0" in cnb_build.detect.stdout
    assert "======== Output:" not in cnb_build.detect.output, cnb_build.detect.output
    assert cnb_build.group() == [BUILDPACK_ID, PROCFILE_BUILDPACK]
    assert not (cnb_build.layers_dir / "plan.toml").read_text().strip()
    layer = cnb_build.layers["jemalloc"]
    assert layer.types == {"launch": True, "build": False, "cache": True}
    assert re.fullmatch(r"[0-9a-f]{64}", layer.metadata["cache_key"])
    assert layer.metadata["version"] == "5.3.0"
    assert set(cnb_build.layers) == {"jemalloc"}
    files = cnb_build.layer_files()
    assert (files / "tree/lib/libjemalloc.so").resolve() == (files / "tree/lib/libjemalloc.so.2").resolve()
    assert (files / "manifest").is_file()
    assert (files / "exec.d/jemalloc").stat().st_mode & 0o111
    for script in ("jemalloc-check", "jemalloc.sh", "jeprof"):
        assert (files / "bin" / script).stat().st_mode & 0o111, script
    # The library stays out of <layer>/lib, which the launcher puts on LD_LIBRARY_PATH.
    assert not (files / "lib").exists()
    # Built by the build image's user, not root.
    assert (files / "tree/lib/libjemalloc.so.2").stat().st_uid == stack.default_uid


def test_build_output_follows_the_classic_build(cnb_build):
    assert_heroku_output(cnb_build)
    assert cnb_build.stdout.splitlines()[0] == "-----> jemalloc 5.3.0 (checksum pinned, tuned for memory)"
    assert f"-----> Building jemalloc 5.3.0 (cache key {short_key(cnb_build)})" in cnb_build.stdout
    assert cnb_build.stdout.splitlines()[-1] == (
        "-----> Installed to the jemalloc layer; preload it with: heroku config:set JEMALLOC_ENABLED=true")
    assert not cnb_build.layer_reused()


def test_the_layer_holds_no_fact_that_changes_from_build_to_build(cnb_build):
    info = cnb_build.build_info()
    assert info["version"] == "5.3.0" and info["source_sha256"]
    assert not {"built_at", "cache_hit"} & set(info), info


def test_a_rebuild_with_the_same_settings_reuses_the_cached_layer(cnb_app, cnb_build, source_config, source_server):
    config = source_config()
    downloads = source_server.requests_for(config["JEMALLOC_SOURCE_URL"])
    rebuild = cnb_app.build(config)
    assert rebuild.succeeded, rebuild.output
    assert_heroku_output(rebuild)
    assert rebuild.stdout.splitlines() == [
        "-----> jemalloc 5.3.0 (checksum pinned, tuned for memory)",
        f"-----> Using cached build {short_key(cnb_build)}",
        "-----> Installed to the jemalloc layer; preload it with: heroku config:set JEMALLOC_ENABLED=true",
    ]
    assert source_server.requests_for(config["JEMALLOC_SOURCE_URL"]) == downloads
    assert f'Restoring data for "{BUILDPACK_ID}:jemalloc" from cache' in rebuild.phases["restorer"].stdout
    assert rebuild.layers["jemalloc"].metadata["cache_key"] == cnb_build.layers["jemalloc"].metadata["cache_key"]
    # The same files, so the same layer: the exporter reuses the previous image's, unchanged.
    assert rebuild.build_info() == cnb_build.build_info()
    assert rebuild.layers["jemalloc"].digest == cnb_build.layers["jemalloc"].digest
    assert rebuild.layer_reused(), rebuild.export


def test_a_damaged_cached_layer_is_not_used(cnb_app, cnb_build, source_config, source_server):
    # The damage is one the lifecycle cannot see (the cache's record of the layer matches the
    # damaged archive), on a build with no previous image, so the layer is restored from the
    # cache: only the buildpack's own check (the manifest) finds it.
    cnb_app.damage_cache("tree/lib/libjemalloc.so.2")
    cnb_app.forget_image()
    # The source URL is not part of the cache key: with the layer intact this build would use it.
    # Damaged, it is rebuilt, from a source that is not there: the build fails without compiling
    # (test_a_changed_version_rebuilds_and_runs_that_version shows a rebuild that compiles).
    config = source_config(fault="404")
    requests = source_server.requests_for(config["JEMALLOC_SOURCE_URL"])
    rebuild = cnb_app.build(config)
    assert f'Restoring data for "{BUILDPACK_ID}:jemalloc" from cache' in rebuild.phases["restorer"].stdout
    assert rebuild.returncode == FAILED_BUILD_STATUS and rebuild.buildpack_status == 1, rebuild.output
    assert rebuild.stdout.splitlines()[:3] == [
        "-----> jemalloc 5.3.0 (checksum pinned, tuned for memory)",
        f"       Cached build {short_key(cnb_build)} is damaged (lib/libjemalloc.so.2 has the wrong checksum); rebuilding",
        "-----> Downloading jemalloc 5.3.0 source",
    ]
    assert source_server.requests_for(config["JEMALLOC_SOURCE_URL"]) == requests + 1
    assert "HTTP 404" in rebuild.output
    assert_nothing_left(rebuild)
    assert cnb_app.image_id is None


def test_a_changed_version_rebuilds_and_runs_that_version(cnb_app, cnb_build, source_config):
    rebuild = cnb_app.build(source_config("5.2.1"))
    assert rebuild.succeeded, rebuild.output
    assert_heroku_output(rebuild)
    assert rebuild.stdout.splitlines()[0] == "-----> jemalloc 5.2.1 (checksum pinned, tuned for memory)"
    assert "-----> Downloading jemalloc 5.2.1 source" in rebuild.stdout
    assert "Using cached build" not in rebuild.stdout
    assert rebuild.layers["jemalloc"].metadata["cache_key"] != cnb_build.layers["jemalloc"].metadata["cache_key"]
    assert rebuild.layers["jemalloc"].digest != cnb_build.layers["jemalloc"].digest
    process = cnb_app.launch(rebuild, "web", ENABLED)
    stdout = process.wait_for_output("ready")
    assert reported_version(stdout).startswith("5.2.1-0-g"), stdout
    assert process.logs()[1] == ""


@pytest.mark.parametrize("config, message", [
    ({"JEMALLOC_VERSION": "banana"}, " !     JEMALLOC_VERSION 'banana' is not a version number."),
    ({"JEMALLOC_VERSION": "5.3.0", "JEMALLOC_SOURCE_URL": "http://127.0.0.1:9/ok/nothing.tar.bz2",
      "JEMALLOC_DOWNLOAD_TIMEOUT": "2"}, " !     Could not download the jemalloc source from http://127.0.0.1:9/ok/nothing.tar.bz2"),
])
def test_bad_input_fails_the_build_cleanly(cnb_app, cnb_build, config, message):
    image_before = cnb_app.image_id
    failed = cnb_app.build(config)
    assert_failed_cleanly(failed, message)
    # Nothing of the jemalloc layer is left for the export, and nothing was exported.
    assert_nothing_left(failed)
    assert cnb_app.image_id == image_before


def test_with_a_checksum_mismatch_nothing_is_built(cnb_app, cnb_build, source_config):
    failed = cnb_app.build(source_config("5.3.0", "wrong-body"))
    assert failed.returncode == FAILED_BUILD_STATUS and failed.buildpack_status == 1
    assert "Checksum mismatch for the jemalloc source" in failed.stdout
    assert "Building jemalloc" not in failed.stdout
    assert_nothing_left(failed)


# --- launch -------------------------------------------------------------------------------

@pytest.fixture
def enabled_web(cnb_app, cnb_build):
    process = cnb_app.launch(cnb_build, "web", ENABLED)
    process.wait_for_output("ready")
    return process


def test_the_image_runs_the_procfile_processes_as_heroku_procfile_declares_them(cnb_build):
    # heroku/procfile's form: direct processes of bash -c and the Procfile line, web the default
    # (the image's entrypoint).
    metadata = tomllib.loads((cnb_build.layers_dir / "config" / "metadata.toml").read_text())
    processes = {process["type"]: process for process in metadata["processes"]}
    assert set(processes) == {"web", "worker"}
    for name, process in processes.items():
        assert process["command"] == ["bash", "-c"] and process["args"] == ["bin/probe"], process
        assert process["direct"] is True and process["buildpack-id"] == PROCFILE_BUILDPACK, process
    assert cnb_build.entrypoint() == ["/cnb/process/web"]


def test_enabled_the_process_and_its_child_run_on_jemalloc(enabled_web):
    main, child = enabled_web.probe_processes()
    assert enabled_web.mapped_files(main) == {LIBRARY_FILE}
    assert enabled_web.mapped_files(child) == {LIBRARY_FILE}
    stdout, stderr = enabled_web.logs()
    assert reported_version(stdout).startswith("5.3.0-0-g")
    assert stderr == ""
    environment = enabled_web.environ(main)
    assert environment["LD_PRELOAD"] == LIBRARY
    assert environment["MALLOC_ARENA_MAX"] == "2"
    # platform.md "Launch Environment": the launcher's own variables are not passed on.
    assert not {"CNB_LAYERS_DIR", "CNB_APP_DIR", "CNB_PROCESS_TYPE"} & set(environment)


def test_disabled_nothing_is_mapped_and_nothing_printed(cnb_app, cnb_build):
    process = cnb_app.launch(cnb_build, "web")
    stdout = process.wait_for_output("ready")
    main, child = process.probe_processes()
    assert process.mapped_files(main) == set()
    assert process.mapped_files(child) == set()
    assert reported_version(stdout) == "none"
    assert process.logs()[1] == ""
    environment = process.environ(main)
    assert "LD_PRELOAD" not in environment and "MALLOC_ARENA_MAX" not in environment
    # The layer's bin/ is on PATH (jemalloc-check, jemalloc.sh), its library on no search path.
    assert f"{LAYER}/bin" in environment["PATH"].split(":")
    assert LAYER not in environment.get("LD_LIBRARY_PATH", "")


def test_jemalloc_process_types_selects_the_processes(cnb_app, cnb_build):
    config = {**ENABLED, "JEMALLOC_PROCESS_TYPES": "worker"}
    web = cnb_app.launch(cnb_build, "web", config)
    worker = cnb_app.launch(cnb_build, "worker", config)
    web.wait_for_output("ready")
    worker.wait_for_output("ready")
    assert web.mapped_files(web.main_process()) == set()
    assert worker.mapped_files(worker.main_process()) == {LIBRARY_FILE}
    assert web.logs()[1] == "" and worker.logs()[1] == ""


def test_the_apps_own_preload_and_arena_setting_are_kept(cnb_app, cnb_build):
    process = cnb_app.launch(cnb_build, "web", {**ENABLED, "LD_PRELOAD": APP_LIBRARY, "MALLOC_ARENA_MAX": "4"})
    process.wait_for_output("ready")
    main = process.main_process()
    environment = process.environ(main)
    assert environment["LD_PRELOAD"] == f"{LIBRARY}:{APP_LIBRARY}"
    assert environment["MALLOC_ARENA_MAX"] == "4"
    assert process.mapped_files(main) == {LIBRARY_FILE}
    assert process.mapped_files(main, "libz.so"), "the app's own preload is not mapped"
    assert process.logs()[1] == ""


def test_a_missing_library_preloads_nothing_and_warns_once(cnb_app, cnb_build):
    process = cnb_app.launch(cnb_build, "web", ENABLED, before=f"rm {LIBRARY_FILE}")
    process.wait_for_output("ready")
    main = process.main_process()
    assert process.mapped_files(main) == set()
    assert "LD_PRELOAD" not in process.environ(main)
    stderr = process.logs()[1]
    assert len(stderr.splitlines()) == 1 and stderr.startswith(MISSING_WARNING), stderr


def test_the_exec_d_output_is_a_toml_table_of_strings(enabled_web):
    # Run by hand with file descriptor 3 on stdout, with an app preload that needs escaping.
    result = enabled_web.exec(
        f"JEMALLOC_ENABLED=true LD_PRELOAD='/opt/a\"b\\c.so' {LAYER}/exec.d/jemalloc 3>&1 >/dev/null 2>&1; echo \"status=$?\"")
    output, status = result.stdout.rsplit("status=", 1)
    assert status.strip() == "0"
    assert tomllib.loads(output) == {"LD_PRELOAD": f'{LIBRARY}:/opt/a"b\\c.so', "MALLOC_ARENA_MAX": "2"}
    disabled = enabled_web.exec(f"env -u JEMALLOC_ENABLED {LAYER}/exec.d/jemalloc 3>&1; echo \"status=$?\"")
    assert disabled.stdout == "status=0\n" and disabled.stderr == ""


def assert_metrics_from_every_process(process, seconds: float = 3) -> None:
    """JEMALLOC_METRICS=1 in a launched container: after a few intervals, the web process and its
    child have each logged figures with Fir's DYNO as source, and jemalloc-check --all (as
    `heroku run:inside` runs it) shows their live and resident bytes."""
    time.sleep(seconds)
    main, child = process.probe_processes()
    stderr = process.logs()[1]
    dyno = process.environ(main)["DYNO"]
    for listed in (main, child):
        pattern = rf"^jemalloc source={re.escape(dyno)} pid={listed.pid} comm={re.escape(listed.name)} sample#jemalloc\.allocated=\d+\.\d\dMB .*sample#jemalloc\.resident=\d+\.\d\dMB"
        assert re.search(pattern, stderr, re.MULTILINE), (listed, stderr)
    rows = {row["pid"]: row for row in process.check("--all")["processes"]}
    for listed in (main, child):
        row = rows[listed.pid]
        assert row["allocated_bytes"] and row["resident_bytes"] >= row["allocated_bytes"], row
        assert row["memory"]["verdict"] in ("steady", "live data", "overhead"), row


def test_metrics_come_from_the_web_process_and_its_child(cnb_app, cnb_build):
    process = cnb_app.launch(cnb_build, "web", {**ENABLED, "JEMALLOC_METRICS": "1"})
    process.wait_for_output("ready")
    assert_metrics_from_every_process(process)


# --- jemalloc-check, jemalloc.sh and jemalloc-config in a CNB container -------------------

def test_jemalloc_check_answers_for_a_one_off_process(cnb_app, cnb_build):
    answer = cnb_app.check(cnb_build, config=ENABLED)
    assert answer.returncode == 0, answer.stderr
    assert answer["active"] is True and answer["reason"] == "on: JEMALLOC_ENABLED=true"
    assert answer["library"] == LIBRARY and answer["library_exists"] is True
    assert answer["mapped"] == LIBRARY_FILE
    assert answer["version"] == "5.3.0" and answer["library_version"].startswith("5.3.0-0-g")
    assert answer["settings"]["process_type"] == "run"
    off = cnb_app.run(cnb_build, "jemalloc-check")
    assert off.returncode == 1
    assert off.stdout.splitlines()[0] == "jemalloc is off: JEMALLOC_ENABLED is unset"
    assert f"  library     {LIBRARY} -> libjemalloc.so.2 (jemalloc 5.3.0" in off.stdout


def test_jemalloc_check_all_agrees_with_the_kernel(enabled_web):
    # As `heroku run:inside <dyno> -- jemalloc-check --all` runs it: `launcher <cmd>` in the dyno.
    answer = enabled_web.check("--all")
    rows = {row["pid"]: row for row in answer["processes"]}
    truth = {process.pid: enabled_web.mapped_files(process) for process in enabled_web.processes()}
    assert set(truth) <= set(rows), (truth, rows)
    for pid, mapped in truth.items():
        assert rows[pid]["jemalloc"] is bool(mapped), (pid, rows[pid], mapped)
        assert {rows[pid]["mapped"]} - {None} == mapped
    assert answer["active"] is True and answer.returncode == 0


def test_jemalloc_sh_preloads_one_command_whatever_jemalloc_enabled_says(cnb_app, cnb_build):
    result = cnb_app.run(cnb_build, "jemalloc.sh jemalloc-check")
    assert result.returncode == 0, result.output
    assert result.stdout.startswith("jemalloc is on: LD_PRELOAD contains the library although JEMALLOC_ENABLED is unset")


def test_jemalloc_config_and_jeprof_name_the_layer(cnb_app, cnb_build):
    result = cnb_app.run(cnb_build, "jemalloc-config --prefix && jemalloc-config --libdir && jeprof --version")
    assert result.returncode == 0, result.output
    prefix, libdir, *jeprof = result.stdout.splitlines()
    assert (prefix, libdir) == (f"{LAYER}/tree", f"{LAYER}/tree/lib")
    assert "5.3.0" in jeprof[0], result.stdout


# --- a group with another buildpack after this one -----------------------------------------

@pytest.fixture(scope="module")
def other_build(stack_images, cnb_app, cnb_build, source_config):
    """The app built with tests/other in the group (after jemalloc): its launch layer sets
    LD_PRELOAD=APP_LIBRARY through env.launch/LD_PRELOAD.default and its exec.d records the
    LD_PRELOAD it sees. From a copy of cnb_app's first cache: the jemalloc layer is reused."""
    with CnbApp(stack_images, cache_from=cnb_app.first_cache) as app:
        build = app.build(source_config(TEST_OTHER_BUILDPACK="yes", TEST_OTHER_PRELOAD=APP_LIBRARY))
        assert build.succeeded, build.output
        yield app, build


def test_with_another_buildpack_its_exec_d_runs_after_ours_and_its_preload_is_kept(other_build):
    app, build = other_build
    assert build.group() == [BUILDPACK_ID, OTHER_BUILDPACK, PROCFILE_BUILDPACK]
    assert "-----> Using cached build" in build.stdout
    enabled = app.launch(build, "web", ENABLED)
    disabled = app.launch(build, "web")
    enabled.wait_for_output("ready")
    disabled.wait_for_output("ready")
    main = enabled.main_process()
    environment = enabled.environ(main)
    # The launcher applies every env file first, then each buildpack's exec.d in group order.
    assert environment["OTHER_SAW_LD_PRELOAD"] == environment["LD_PRELOAD"] == f"{LIBRARY}:{APP_LIBRARY}"
    assert enabled.mapped_files(main) == {LIBRARY_FILE}
    assert enabled.mapped_files(main, "libz.so")
    off = disabled.environ(disabled.main_process())
    assert off["OTHER_SAW_LD_PRELOAD"] == off["LD_PRELOAD"] == APP_LIBRARY
    assert enabled.logs()[1] == "" and disabled.logs()[1] == ""
