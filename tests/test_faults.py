"""Faults through the harness: the real bin/compile in each stack's build image, then real dynos.

One test per class of fault; test_faults_host.py is the fast tier that covers every step of
each. Builds from source use the mini stand-in for jemalloc (harness/faults.py) where what is
compiled does not matter (it builds in a second), the real 5.3.0 release where a dyno must run
jemalloc; cache hits reuse a copy of the session's built app's cache.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import threading
import time

import pytest

from harness.app import APPS, App
from harness.docker import docker
from harness.faults import Faults, mini_config, mini_source, repacked_release
from harness.paths import served_source_config
from harness.stacks import BUILD_LOGIC_STACKS

# The fault handling is bash in the build image (see BUILD_LOGIC_STACKS); the fast host tier
# (test_faults_host.py) covers every step.
pytestmark = pytest.mark.stacks(*BUILD_LOGIC_STACKS)
ENABLED = {"JEMALLOC_ENABLED": "true"}
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FAULTS_MOUNT = "/tmp/faults"


def builds(app: App):
    return app.cache_dir / "jemalloc" / "builds"


def cache_entries(app: App) -> list[str]:
    return sorted(p.name for p in builds(app).iterdir() if not p.name.startswith(".")) if builds(app).is_dir() else []


def cache_leftovers(app: App) -> list[str]:
    return sorted(p.name for p in builds(app).iterdir() if p.name.startswith((".partial", ".trash", ".probe"))) \
        if builds(app).is_dir() else []


def app_files(build) -> set[str]:
    return {str(path.relative_to(build.build_dir)) for path in build.build_dir.rglob("*")}


SAMPLE_FILES = {str(path.relative_to(APPS / "sample")) for path in (APPS / "sample").rglob("*")}


def assert_runs_jemalloc(app: App, build) -> dict:
    """A one-off dyno of the build, with JEMALLOC_ENABLED=true, has the library mapped."""
    answer = app.check(build, config=ENABLED)
    assert answer.returncode == 0 and answer["active"], (answer, answer.stderr)
    return answer


@pytest.fixture
def cached_app(stack_images, built_app):
    """A new app whose build cache is a copy of the built app's, which holds the 5.3.0 build."""
    source, _ = built_app
    with App(stack_images) as app:
        shutil.rmtree(app.cache_dir)
        shutil.copytree(source.cache_dir, app.cache_dir, symlinks=True)
        (app.cache_dir / "jemalloc" / "last-build-report").unlink(missing_ok=True)
        app._own(app.cache_dir)
        yield app


@contextlib.contextmanager
def tmpfs(path, size: str, owner: int):
    path.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755,uid={owner},gid={owner}", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory) -> None:
    with contextlib.suppress(OSError), open(directory / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tmpfs mounts)")


# --- a cache entry evicted by the build about to install it ---------------------------------

def test_the_entry_in_use_survives_entries_dated_in_the_future(cached_app, source_config):
    app = cached_app
    first = app.compile(source_config())
    assert first.succeeded and "Using cached build" in first.stdout, first.output
    short_key = first.stdout.split("Using cached build ")[1].split()[0]
    (entry,) = [name for name in cache_entries(app) if name.startswith(short_key)]
    tomorrow = time.time() + 86400
    for name in ("d" * 64, "e" * 64, "f" * 64):
        shutil.copytree(builds(app) / entry, builds(app) / name, symlinks=True)
        os.utime(builds(app) / name, (tomorrow, tomorrow))
    app._own(app.cache_dir)
    build = app.compile(source_config())
    assert build.succeeded, build.output
    assert "Using cached build" in build.stdout
    assert entry in cache_entries(app)
    assert assert_runs_jemalloc(app, build)["version"] == "5.3.0"


# --- secrets in JEMALLOC_SOURCE_URL ----------------------------------------------------------

def test_no_secret_of_a_source_url_is_shown_reported_or_kept(app, source_server):
    source = mini_source()
    source_server.extra_files[source.name] = source.body
    failing = (f"http://user:p@ss/SECRET-1@127.0.0.1:{source_server.port}/404/{source.name}"
               "?X-Amz-Signature=SECRET2abcdef0123456789")
    build = app.compile(mini_config(source_server, source, JEMALLOC_SOURCE_URL=failing))
    assert not build.succeeded
    assert "SECRET" not in build.output and "SECRET" not in app.report_output(), build.output
    assert "failure_reason" in app.report()

    working = (f"http://user:pw%40SECRET-3@127.0.0.1:{source_server.port}/ok/{source.name}"
               "?X-Amz-Signature=SECRET4abcdef0123456789&token=SECRET-5-token")
    build = app.compile(mini_config(source_server, source, JEMALLOC_SOURCE_URL=working))
    assert build.succeeded, build.output
    assert "SECRET" not in build.output
    assert app.report()["source_url"] == (f"http://***@127.0.0.1:{source_server.port}/ok/{source.name}"
                                         "?X-Amz-Signature=***&token=***")
    for directory in (build.build_dir, app.cache_dir):
        for path in directory.rglob("*"):
            assert not path.is_file() or b"SECRET" not in path.read_bytes(), path
    checked = app.check(build, config=ENABLED)
    assert checked["active"] and "SECRET" not in json.dumps(checked) + checked.stderr


# --- a cache that cannot be written ----------------------------------------------------------

@needs_root
@pytest.mark.parametrize("fault", ["read-only", "not writable by the build user", "full", "dangling symlink"])
def test_a_build_with_an_unusable_cache_succeeds_without_caching(app, source_server, stack, fault):
    docker_args, cache_path = [], "/tmp/cache"
    with contextlib.ExitStack() as cleanup:
        if fault == "read-only":
            docker_args = ["--volume", f"{app.cache_dir}:/tmp/cache-ro:ro"]
            cache_path = "/tmp/cache-ro"
        elif fault == "not writable by the build user":
            if stack.default_uid == 0:
                pytest.skip(f"{stack.name} builds as root, who may write anywhere")
            os.chown(app.cache_dir, 0, 0)
            app.cache_dir.chmod(0o755)
        elif fault == "full":
            cleanup.enter_context(tmpfs(app.cache_dir, "64k", stack.default_uid))
            fill(app.cache_dir)
        elif fault == "dangling symlink":
            links = app.workspace / "links"
            links.mkdir()
            (links / "cache").symlink_to("/tmp/nowhere")
            docker_args = ["--volume", f"{links}:/tmp/links"]
            cache_path = "/tmp/links/cache"
        build = app.compile(mini_config(source_server), cache_path=cache_path, docker_args=docker_args)
        assert build.succeeded, build.output
        assert build.stderr == ""
        said = [line for line in build.stdout.splitlines() if "Not caching" in line]
        assert len(said) == 1 and said[0].startswith("       Not caching: "), build.stdout
        if fault == "full":
            assert "no space left on /tmp/cache" in said[0]
        assert cache_leftovers(app) == []
    assert_runs_jemalloc(app, build)


# --- a full TMPDIR or BUILD_DIR --------------------------------------------------------------

def test_a_full_tmpdir_says_no_space_left_on_it(app, source_config):
    build = app.compile(source_config(), docker_args=["--tmpfs", "/tmp/small:size=256k,mode=1777",
                                                      "--env", "TMPDIR=/tmp/small"])
    assert not build.succeeded
    assert build.stderr.startswith(" !     No space left on /tmp/small (TMPDIR"), build.output
    assert "JEMALLOC_VERSION" not in build.stderr
    assert app_files(build) == SAMPLE_FILES


@needs_root
def test_a_full_build_dir_says_no_space_left_on_it_and_leaves_nothing(cached_app, source_config, stack):
    app = cached_app
    build_dir = app.workspace / f"build_{secrets.token_hex(6)}"
    with tmpfs(build_dir, "1m", stack.default_uid):
        shutil.copytree(APPS / "sample", build_dir, symlinks=True, dirs_exist_ok=True)
        fill(build_dir)
        build = app.compile(source_config(), build_dir=build_dir)
        assert not build.succeeded
        assert build.stderr.startswith(f" !     No space left on /tmp/{build_dir.name} (the app's build directory)"
                                       " while installing into vendor/jemalloc."), build.output
        assert app_files(build) == SAMPLE_FILES | {"filler"}


# --- builds sharing one cache ----------------------------------------------------------------

def test_two_builds_sharing_one_cache_both_succeed(stack_images, source_server):
    apps = [App(stack_images), App(stack_images)]
    apps[1].cache_dir = apps[0].cache_dir
    results = {}
    try:
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, apps[i].compile(mini_config(source_server))))
                   for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for build in results.values():
            assert build.succeeded, build.output
        assert len(cache_entries(apps[0])) == 1
        assert cache_leftovers(apps[0]) == []
        assert_runs_jemalloc(apps[1], results[1])
    finally:
        for app in apps:
            app.cleanup()


# --- a build killed while installing --------------------------------------------------------

def test_a_build_killed_while_installing_leaves_nothing_in_the_next_slug(cached_app, source_config):
    app = cached_app
    faults = Faults(app.workspace / "faults", seen_as=FAULTS_MOUNT)
    faults.pause("cp", ".jemalloc-install-", after=True)
    container = f"jemalloc-buildpack-compile-{secrets.token_hex(4)}"
    killed = {}
    thread = threading.Thread(target=lambda: killed.setdefault("build", app.compile(
        source_config(), compile_container=container,
        docker_args=["--volume", f"{faults.directory}:{FAULTS_MOUNT}", "--env", f"PATH={faults.path(IMAGE_PATH)}"])))
    thread.start()
    try:
        faults.wait_paused("cp")
        docker("kill", "--signal", "KILL", container, check=False)
    finally:
        faults.release("cp")
        thread.join()
    first = killed["build"]
    assert not first.succeeded
    assert [name for name in app_files(first) if ".jemalloc-install" in name], "the kill left no staging copy"
    again = app.compile(source_config(), build_dir=first.build_dir)
    assert again.succeeded, again.output
    assert not [name for name in app_files(again) if ".jemalloc-install" in name]
    assert_runs_jemalloc(app, again)


# --- jemalloc-check --json with bytes that are not UTF-8 ------------------------------------

def test_jemalloc_check_json_is_valid_utf8_in_a_dyno_whatever_bytes_it_quotes(built_app):
    app, build = built_app
    command = r"""
ln -s "$(command -v sleep)" /tmp/$'x\xe9\xff'
/tmp/$'x\xe9\xff' 60 &
pid=$!
until [ "$(cat /proc/$pid/comm)" != bash ]; do :; done
export MALLOC_CONF=$'caf\xc3\xa9\xff' DYNO=$'w\xe9b.1'
jemalloc-check --json | base64 -w0; echo
jemalloc-check --json "$pid" | base64 -w0; echo
kill $pid
"""
    result = app.run(build, command, ENABLED)
    shell, processes = (json.loads(base64.b64decode(line).decode("utf-8")) for line in result.stdout.split())
    assert shell["settings"]["MALLOC_CONF"] == "caf\u00e9\ufffd"
    assert shell["settings"]["DYNO"] == "w\ufffdb.1"
    assert shell["active"] is True
    assert processes["processes"][0]["comm"] == "x\ufffd\ufffd"


# --- a source tarball with ./ member names ---------------------------------------------------

def dot_slash(member, data):
    """A member renamed ./jemalloc-5.3.0/..., as `tar -c ./dir` names them."""
    member.name = "./" + member.name
    return data


def test_a_release_tarball_with_dot_slash_member_names_builds_and_runs(app, source_server):
    build = app.compile(served_source_config(source_server, "jemalloc-5.3.0-dot-slash.tar.gz",
                                             repacked_release(dot_slash)))
    assert build.succeeded, build.output
    assert assert_runs_jemalloc(app, build)["library_version"].startswith("5.3.0-0-g")


# --- values that cannot be shown as they are -------------------------------------------------

@pytest.mark.parametrize("value", ["5.3.0\0; echo hidden", "\x1b[31mred\x1b]0;title\x07\x1b[2J", "9" * 102400],
                         ids=["NUL byte", "escape sequences", "100 KB"])
def test_an_unreadable_value_is_refused_and_shown_printable(app, source_config, value):
    build = app.compile(source_config(JEMALLOC_VERSION=value))
    assert not build.succeeded
    assert build.stderr.startswith(" !     JEMALLOC_VERSION "), build.output
    assert not [char for char in build.output if ord(char) < 0x20 and char != "\n"], build.output[:2000]
    assert len(build.output) < 4000
    assert app_files(build) == SAMPLE_FILES
    assert app.report()["failure_reason"].startswith("JEMALLOC_VERSION ")


# --- an unexpected failure -------------------------------------------------------------------

def test_an_unexpected_failure_names_the_step_and_bin_report_says_why(app, source_server):
    faults = Faults(app.workspace / "faults", seen_as=FAULTS_MOUNT)
    faults.fail("sha256sum", "jemalloc-source", "Input/output error")
    build = app.compile(mini_config(source_server),
                        docker_args=["--volume", f"{faults.directory}:{FAULTS_MOUNT}",
                                     "--env", f"PATH={faults.path(IMAGE_PATH)}"])
    assert not build.succeeded
    assert " !     The build failed unexpectedly while downloading the jemalloc source: " in build.stderr, build.output
    assert app_files(build) == SAMPLE_FILES
    facts = app.report()
    assert facts["failure_step"] == "downloading the jemalloc source"
    assert facts["failure_reason"].startswith("The build failed unexpectedly while downloading")
