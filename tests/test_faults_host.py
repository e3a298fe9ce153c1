"""Fault injection on the host, without Docker: the real bin/compile, bin/report and jemalloc-check.

Each test gives bin/compile a temporary BUILD_DIR, CACHE_DIR, ENV_DIR and TMPDIR of its own on
this machine (Debian, with bash, curl, gcc and make), breaks something on purpose, and checks
what the build said and what it left. Disks fill up in tmpfs mounts, commands pause or fail
through wrappers put first on PATH (harness/faults.py), builds are stopped with signals at each
step. The source is the mini stand-in for jemalloc (harness/faults.py), which builds in about a
second, so that the whole tier runs in a minute or two; real jemalloc builds are the Docker
tier's (test_faults.py and the other test files).

Mounting tmpfs and running a build as another user need root: without it those tests are
skipped, and say so. BUILDPACK_UNDER_TEST=<dir> runs the tests against another checkout's
bin/, lib/ and runtime/ (to see them fail on an older version).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.faults import Faults, mini_config, mini_source
from harness.parsers import parse_check, parse_report
from harness.paths import APP_PREFIX, LIBRARY, REPO, SHIM, lay_out_runtime, slug_relative

BUILDPACK = Path(os.environ.get("BUILDPACK_UNDER_TEST", REPO))
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = 65534
COMPILE_TIMEOUT = 300

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tmpfs mounts, another user)")
# What bin/compile needs from this machine (scripts/test installs the ones Debian lacks).
HOST_TOOLS = ("bash", "curl", "tar", "gzip", "gcc", "make", "strip", "nm", "objcopy", "flock", "setpriv", "sha256sum")
_missing = [tool for tool in HOST_TOOLS if not shutil.which(tool)]
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"this machine lacks {', '.join(_missing)}, which bin/compile needs")


@dataclass
class Run:
    returncode: int
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class HostApp:
    """One app on the host: a build directory with one file of the app's, a cache, a TMPDIR."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="jemalloc-faults-"))
        self.root.chmod(0o755)
        self.build_dir = self.root / "build"
        self.build_dir.mkdir()
        (self.build_dir / "app.txt").write_text("the app's own file\n")
        self.cache_dir = self.root / "cache"
        self.cache_dir.mkdir()
        self.tmpdir = self.root / "tmp"
        self.tmpdir.mkdir()
        self._envs = 0
        self.mounts: list[Path] = []

    def env_dir(self, config: dict[str, str | bytes]) -> Path:
        self._envs += 1
        env_dir = self.root / f"env{self._envs}"
        env_dir.mkdir()
        for name, value in config.items():
            (env_dir / name).write_bytes(value if isinstance(value, bytes) else value.encode())
        return env_dir

    def command(self, config, faults: Faults | None = None, user: int | None = None,
                cache_dir: Path | None = None, tmpdir: Path | None = None, build_dir: Path | None = None):
        environment = {
            "PATH": faults.path(BASE_PATH) if faults else BASE_PATH,
            "HOME": str(self.root),
            "TMPDIR": str(tmpdir or self.tmpdir),
            "STACK": "host-test",
            "LANG": "C.UTF-8",
        }
        argv = ["bash", str(BUILDPACK / "bin" / "compile"), str(build_dir or self.build_dir),
                str(cache_dir or self.cache_dir), str(self.env_dir(config))]
        if user is not None:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *argv]
        return argv, environment

    def compile(self, config, **options) -> Run:
        argv, environment = self.command(config, **options)
        done = subprocess.run(argv, env=environment, capture_output=True, timeout=COMPILE_TIMEOUT)
        return Run(done.returncode, done.stdout, done.stderr)

    def start(self, config, **options) -> subprocess.Popen:
        """bin/compile in the background, in a session of its own (so a signal reaches all of it)."""
        argv, environment = self.command(config, **options)
        return subprocess.Popen(argv, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    @staticmethod
    def finish(process: subprocess.Popen) -> Run:
        stdout, stderr = process.communicate(timeout=COMPILE_TIMEOUT)
        return Run(process.returncode, stdout, stderr)

    def report(self) -> dict:
        done = subprocess.run(["bash", str(BUILDPACK / "bin" / "report"), str(self.build_dir), str(self.cache_dir), "/nonexistent"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return parse_report(done.stdout)

    def slug(self) -> set[str]:
        """Every path in BUILD_DIR, relative to it."""
        return {str(path.relative_to(self.build_dir)) for path in self.build_dir.rglob("*")}

    def builds(self) -> Path:
        return self.cache_dir / "jemalloc" / "builds"

    def cache_entries(self) -> list[str]:
        return sorted(path.name for path in self.builds().iterdir() if not path.name.startswith(".")) if self.builds().is_dir() else []

    def cache_leftovers(self) -> list[str]:
        if not self.builds().is_dir():
            return []
        return sorted(path.name for path in self.builds().iterdir() if path.name.startswith((".partial", ".trash", ".probe")))

    def mount_tmpfs(self, path: Path, size: str) -> None:
        path.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
        self.mounts.append(path)

    def mount_read_only(self, path: Path) -> None:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        self.mounts.append(path)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)

    def cleanup(self) -> None:
        for path in reversed(self.mounts):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


INSTALLED = {"vendor", slug_relative(APP_PREFIX), slug_relative(LIBRARY), slug_relative(SHIM)}
UNTOUCHED = {"app.txt"}


def assert_installed(app: HostApp, run: Run) -> None:
    assert run.returncode == 0, run.output
    assert INSTALLED <= app.slug(), app.slug()
    assert not [path for path in app.slug() if ".jemalloc-install" in path]
    assert (app.build_dir / slug_relative(LIBRARY)).resolve().is_file()


def assert_failed_cleanly(app: HostApp, run: Run) -> str:
    """Failed, said why on stderr in Heroku's style, and left the app and the cache as they were."""
    assert run.returncode != 0, run.output
    assert run.stderr.startswith(" !     "), run.output
    assert app.slug() == UNTOUCHED, app.slug()
    assert app.cache_leftovers() == []
    return run.stderr


def fill(directory: Path) -> None:
    """Write into DIRECTORY until its filesystem is full."""
    with contextlib.suppress(OSError), open(directory / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()


@pytest.fixture(scope="module")
def mini(source_server):
    """mini(source=None, **config_vars): config vars that build the mini source (harness.faults.mini_config)."""
    return functools.partial(mini_config, source_server)


@pytest.fixture
def app():
    created = HostApp()
    yield created
    created.cleanup()


def use_cache(app: HostApp, cache_dir: Path) -> None:
    """Give APP a copy of CACHE_DIR as its cache."""
    shutil.rmtree(app.cache_dir)
    shutil.copytree(cache_dir, app.cache_dir, symlinks=True)


@pytest.fixture(scope="module")
def template_cache(mini):
    """A cache holding one entry, the mini source's default build; tests start from copies of it."""
    template = HostApp()
    run = template.compile(mini())
    assert run.returncode == 0, run.output
    yield template.cache_dir
    template.cleanup()


@pytest.fixture
def cached_app(app, template_cache):
    """An app whose cache holds the build that mini() asks for."""
    use_cache(app, template_cache)
    (app.cache_dir / "jemalloc" / "last-build-report").unlink(missing_ok=True)
    return app


# --- a cache entry evicted by the build that is about to install it --------------------------

def test_the_entry_in_use_is_never_evicted_even_when_others_look_newer(cached_app, mini):
    (entry,) = cached_app.cache_entries()
    # Three other entries dated tomorrow, as a skewed clock (or a cache from another machine) leaves them.
    tomorrow = time.time() + 86400
    for name in ("d" * 64, "e" * 64, "f" * 64):
        shutil.copytree(cached_app.builds() / entry, cached_app.builds() / name, symlinks=True)
        os.utime(cached_app.builds() / name, (tomorrow, tomorrow))
    run = cached_app.compile(mini())
    assert_installed(cached_app, run)
    assert "Using cached build" in run.stdout
    assert entry in cached_app.cache_entries()
    assert len(cached_app.cache_entries()) == 3


# --- secrets in JEMALLOC_SOURCE_URL ----------------------------------------------------------

# Each holds SECRET in what must never be shown: a password, a signature, a token.
SECRET_URLS = {
    "password with @": "http://user:p@ss-SECRET-1@127.0.0.1:{port}/404/{name}",
    "password with /": "http://user:pa/ss-SECRET-2@127.0.0.1:{port}/404/{name}",
    "password percent-encoded": "http://user:pw%40SECRET-3%2F@127.0.0.1:{port}/404/{name}",
    "signed URL": "http://127.0.0.1:{port}/404/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                  "&X-Amz-Credential=AKIASECRET4%2F20261123%2Fus-east-1&X-Amz-Signature=SECRET5abcdef0123456789",
    "token": "http://127.0.0.1:{port}/404/{name}?token=SECRET-6-token",
    "fragment": "http://127.0.0.1:{port}/404/{name}#SECRET-7-fragment",
}


def assert_no_secret(app: HostApp, run: Run) -> None:
    assert "SECRET" not in run.output, run.output
    assert "SECRET" not in json.dumps(app.report()), app.report()
    for directory in (app.build_dir, app.cache_dir):
        for path in directory.rglob("*"):
            if path.is_file():
                assert b"SECRET" not in path.read_bytes(), path


@pytest.mark.parametrize("form", SECRET_URLS)
def test_no_secret_of_a_failing_source_url_is_shown_or_reported(app, mini, source_server, form):
    url = SECRET_URLS[form].format(port=source_server.port, name=mini_source().name)
    run = app.compile(mini(JEMALLOC_SOURCE_URL=url))
    assert_failed_cleanly(app, run)
    assert "127.0.0.1" in run.output
    assert_no_secret(app, run)
    assert app.report()["failure_reason"]


@pytest.mark.parametrize("form", SECRET_URLS)
@pytest.mark.parametrize("mistake", ["ftp scheme", "space"])
def test_no_secret_of_a_malformed_source_url_is_shown_or_reported(app, mini, source_server, form, mistake):
    url = SECRET_URLS[form].format(port=source_server.port, name=mini_source().name)
    url = url.replace("http://", "ftp://") if mistake == "ftp scheme" else url.replace("/404/", "/4 04/")
    run = app.compile(mini(JEMALLOC_SOURCE_URL=url))
    stderr = assert_failed_cleanly(app, run)
    assert "JEMALLOC_SOURCE_URL" in stderr
    assert_no_secret(app, run)


def test_no_secret_of_a_working_source_url_is_shown_reported_or_kept(app, mini, source_server):
    source = mini_source()
    url = (f"http://user:pw%40SECRET-8@127.0.0.1:{source_server.port}/ok/{source.name}"
           "?X-Amz-Signature=SECRET9abcdef0123456789&token=SECRET-10-token")
    run = app.compile(mini(source, JEMALLOC_SOURCE_URL=url))
    assert_installed(app, run)
    assert_no_secret(app, run)
    assert app.report()["source_url"].startswith("http://***@127.0.0.1:")


# --- a cache that cannot be written ----------------------------------------------------------

CACHE_FAULTS = ["read-only", "not writable by the build user", "full", "dangling symlink", "too small for the entry"]


@needs_root
@pytest.mark.parametrize("fault", CACHE_FAULTS)
def test_a_build_with_an_unusable_cache_succeeds_without_caching(app, mini, fault):
    cache_dir, user, config = app.cache_dir, None, mini()
    if fault == "read-only":
        app.mount_read_only(app.cache_dir)
    elif fault == "not writable by the build user":
        user = NOBODY
        for path in (app.root, app.build_dir, app.tmpdir, *app.build_dir.rglob("*")):
            os.chown(path, NOBODY, NOBODY)
    elif fault == "full":
        app.mount_tmpfs(app.cache_dir, "64k")
        fill(app.cache_dir)
    elif fault == "dangling symlink":
        cache_dir = app.root / "cache-link"
        cache_dir.symlink_to(app.root / "gone")
    elif fault == "too small for the entry":
        # Room for the cache's own files, not for this build (its library is 1 MiB).
        app.mount_tmpfs(app.cache_dir, "256k")
        config = mini(mini_source(padding_kib=1024))
    run = app.compile(config, user=user, cache_dir=cache_dir)
    assert_installed(app, run)
    assert run.stderr == ""
    said = [line for line in run.stdout.splitlines() if "Not caching" in line]
    assert len(said) == 1, run.stdout
    assert said[0].startswith("       Not caching: ")
    if fault in ("full", "too small for the entry"):
        assert f"no space left on {app.cache_dir}" in said[0]
    assert app.cache_leftovers() == []
    if fault == "too small for the entry":
        assert app.cache_entries() == []


# --- a full TMPDIR or BUILD_DIR --------------------------------------------------------------

@needs_root
def test_a_full_tmpdir_during_the_download_says_no_space_left_on_it(app, source_config):
    app.mount_tmpfs(app.tmpdir, "256k")
    # The 5.3.0 release tarball (736 KB) cannot fit.
    config = source_config("5.3.0")
    stderr = assert_failed_cleanly(app, app.compile(config))
    assert f"No space left on {app.tmpdir} (TMPDIR" in stderr
    assert "JEMALLOC_VERSION" not in stderr
    assert "TMPDIR" in stderr.splitlines()[1]
    assert "downloading" in app.report()["failure_reason"]


@needs_root
def test_a_full_tmpdir_while_unpacking_says_no_space_left_on_it(app, mini):
    app.mount_tmpfs(app.tmpdir, "1m")
    # A few KB to download, 4 MB unpacked.
    stderr = assert_failed_cleanly(app, app.compile(mini(mini_source(filler_kib=4096))))
    assert f"No space left on {app.tmpdir} (TMPDIR" in stderr
    assert "Unpacking" not in stderr


@needs_root
def test_a_full_build_dir_says_no_space_left_on_it_and_leaves_nothing(cached_app, mini):
    app = cached_app
    (app.build_dir / "app.txt").unlink()
    app.mount_tmpfs(app.build_dir, "1m")
    (app.build_dir / "app.txt").write_text("the app's own file\n")
    fill(app.build_dir)
    run = app.compile(mini())
    assert run.returncode != 0
    assert run.stderr.startswith(" !     "), run.output
    assert f"No space left on {app.build_dir} (the app's build directory) while installing" in run.stderr
    assert app.slug() == {"app.txt", "filler"}


# --- builds sharing one cache ----------------------------------------------------------------

def test_a_build_does_not_remove_the_entry_another_build_is_writing(app, mini):
    faults = Faults(app.root / "faults")
    faults.pause("cp", "/.partial-")
    first = app.start(mini(), faults=faults)
    faults.wait_paused("cp", first)
    # Meanwhile another build of the same app, with another cache key, comes and goes.
    second = app.compile(mini(JEMALLOC_PROFILING="true"))
    faults.release("cp")
    first = app.finish(first)
    assert first.returncode == 0, first.output
    assert_installed(app, second)
    assert len(app.cache_entries()) == 2
    assert app.cache_leftovers() == []


def test_eviction_passes_by_an_entry_another_build_is_reading(cached_app, mini):
    app = cached_app
    (entry,) = app.cache_entries()
    tomorrow = time.time() + 86400
    for name in ("d" * 64, "e" * 64, "f" * 64):
        shutil.copytree(app.builds() / entry, app.builds() / name, symlinks=True)
        os.utime(app.builds() / name, (tomorrow, tomorrow))
    faults = Faults(app.root / "faults")
    faults.pause("cp", f"/builds/{entry}/tree")
    first = app.start(mini(), faults=faults)
    faults.wait_paused("cp", first)
    second = app.compile(mini(JEMALLOC_PROFILING="true"))
    assert second.returncode == 0, second.output
    faults.release("cp")
    first = app.finish(first)
    assert first.returncode == 0, first.output
    assert "Using cached build" in first.stdout
    assert entry in app.cache_entries()


def test_two_apps_built_at_once_on_one_cache_both_succeed(app, mini):
    # Two apps (each its own BUILD_DIR, as on a CI system or for review apps) share one cache.
    other_build_dir = app.root / "other-app"
    other_build_dir.mkdir()
    builds = [app.start(mini()), app.start(mini(), build_dir=other_build_dir)]
    runs = [app.finish(build) for build in builds]
    for run in runs:
        assert run.returncode == 0, run.output
    for build_dir in (app.build_dir, other_build_dir):
        assert (build_dir / slug_relative(LIBRARY)).is_file()
    assert len(app.cache_entries()) == 1
    assert app.cache_leftovers() == []


# --- stopped at each step --------------------------------------------------------------------

STEPS = {
    # step named in the messages: (command paused, argument that picks the call, pause after it
    # has done its work?, cache warm?)
    "downloading the jemalloc source": ("curl", "jemalloc-source", False, False),
    "building jemalloc (unpacking)": ("tar", "--strip-components", False, False),
    "building jemalloc (make)": ("make", "build_lib_shared", False, False),
    "storing the build in the cache": ("cp", "/.partial-", True, False),
    "reading the cached build": ("cp", "/jemalloc/builds/", True, True),
    "installing into vendor/jemalloc": ("cp", ".jemalloc-install-", True, True),
}


def stop_at(app: HostApp, config, step: str, signal_number: int, warm_cache: Path | None = None) -> Run:
    """Start a build of CONFIG, stop it with SIGNAL_NUMBER at STEP, and let it end. A step that
    reads a cached build starts from a copy of WARM_CACHE, if given."""
    command, pattern, after, warm = STEPS[step]
    if warm and warm_cache is not None:
        use_cache(app, warm_cache)
    faults = Faults(app.root / f"faults-{signal_number}")
    faults.pause(command, pattern, after=after)
    build = app.start(config, faults=faults)
    faults.wait_paused(command, build)
    os.killpg(build.pid, signal_number)
    return app.finish(build)


@pytest.mark.parametrize("step", STEPS)
def test_a_build_stopped_by_sigterm_at_each_step_says_so_and_leaves_nothing(app, template_cache, mini, step):
    run = stop_at(app, mini(), step, signal.SIGTERM, warm_cache=template_cache)
    assert run.returncode == 143, run.output
    assert f"stopped by SIGTERM while {step.split(' (')[0]}" in run.stderr, run.output
    assert app.slug() == UNTOUCHED
    assert app.cache_leftovers() == []
    assert list(app.tmpdir.iterdir()) == []
    assert "SIGTERM" in app.report()["failure_reason"]


@pytest.mark.parametrize("step", STEPS)
def test_after_a_build_killed_at_each_step_the_next_build_leaves_nothing_of_it(app, template_cache, mini, step):
    killed = stop_at(app, mini(), step, signal.SIGKILL, warm_cache=template_cache)
    assert killed.returncode == -signal.SIGKILL
    run = app.compile(mini())
    assert_installed(app, run)
    assert app.slug() == UNTOUCHED | INSTALLED | {
        str(path.relative_to(app.build_dir)) for path in (app.build_dir / slug_relative(APP_PREFIX)).rglob("*")} | {".profile.d"}
    assert app.cache_leftovers() == []


def test_a_staging_copy_left_by_a_killed_install_is_not_kept_in_the_slug(cached_app, mini):
    app = cached_app
    stop_at(app, mini(), "installing into vendor/jemalloc", signal.SIGKILL)
    assert [path for path in app.slug() if ".jemalloc-install" in path], "the kill left no staging copy to test with"
    assert_installed(app, app.compile(mini()))


# --- unexpected failures ---------------------------------------------------------------------

def test_an_unexpected_failure_is_one_error_line_naming_the_step_and_is_reported(app, mini):
    faults = Faults(app.root / "faults")
    faults.fail("sha256sum", "jemalloc-source", "Input/output error")
    run = app.compile(mini(), faults=faults)
    assert run.returncode == 1
    assert app.slug() == UNTOUCHED
    # The failing tool's own message comes first; then one line says what the build was doing.
    assert run.stderr.startswith("sha256sum: Input/output error\n !     The build failed unexpectedly"
                                 " while downloading the jemalloc source: "), run.stderr
    report = app.report()
    assert report["failure_step"] == "downloading the jemalloc source"
    assert report["failure_reason"].startswith("The build failed unexpectedly while downloading")
    assert report["jemalloc_version"] == "5.3.0"


def test_a_failing_install_step_is_said_in_one_line_without_raw_messages(cached_app, mini):
    app = cached_app
    faults = Faults(app.root / "faults")
    faults.fail("cp", ".jemalloc-install-", "error writing: Input/output error")
    stderr = assert_failed_cleanly(app, app.compile(mini(), faults=faults))
    assert stderr.startswith(" !     Installing jemalloc into vendor/jemalloc failed: Input/output error."), stderr


def test_a_successful_build_after_a_failed_one_reports_no_failure(app, mini):
    assert_failed_cleanly(app, app.compile(mini(JEMALLOC_TUNING="fast")))
    assert "JEMALLOC_TUNING" in app.report()["failure_reason"]
    assert_installed(app, app.compile(mini()))
    report = app.report()
    assert "failure_reason" not in report
    assert report["cache_hit"] is False


# --- source archives laid out with ./ --------------------------------------------------------

@pytest.mark.parametrize("layout", ["dot-top", "dot-root"])
def test_a_source_tarball_with_dot_slash_member_names_builds(app, mini, layout):
    run = app.compile(mini(mini_source(layout=layout)))
    assert_installed(app, run)


# --- values that cannot be shown as they are -------------------------------------------------

UNREADABLE = {
    "NUL byte": b"5.3.0\0; echo hidden",
    "escape sequences": b"\x1b[31mred\x1b]0;title\x07\x1b[2J",
    "100 KB": b"9" * 102400,
}
CONFIG_VARS = ["JEMALLOC_VERSION", "JEMALLOC_CHECKSUM", "JEMALLOC_SOURCE_URL", "JEMALLOC_DOWNLOAD_TIMEOUT",
               "JEMALLOC_PROFILING", "JEMALLOC_TUNING"]


@pytest.mark.parametrize("kind", UNREADABLE)
@pytest.mark.parametrize("name", CONFIG_VARS)
def test_an_unreadable_value_is_refused_and_shown_printable(app, mini, name, kind):
    run = app.compile(mini(**{name: UNREADABLE[kind]}))
    stderr = assert_failed_cleanly(app, run)
    assert name in stderr
    output = run.stdout_bytes + run.stderr_bytes
    assert not [byte for byte in output if byte < 0x20 and byte != 0x0a], output[:2000]
    assert len(output) < 4000, len(output)
    reason = app.report()["failure_reason"]
    assert name in reason and len(reason) < 1200
    assert not [char for char in reason if ord(char) < 0x20]


def test_a_long_valid_source_url_is_cut_in_the_log(app, mini):
    url = "http://127.0.0.1:9/" + "a" * 102400 + ".tar.gz"
    run = app.compile(mini(JEMALLOC_SOURCE_URL=url))
    assert_failed_cleanly(app, run)
    assert len(run.stdout_bytes + run.stderr_bytes) < 6000


# --- jemalloc-check --json -------------------------------------------------------------------

def test_jemalloc_check_json_is_valid_utf8_whatever_bytes_it_quotes(app):
    check = lay_out_runtime(BUILDPACK, app.root / "vendor-jemalloc") / "jemalloc-check"
    # A process whose name, and variables whose values, are not UTF-8.
    name = b"x\xe9\xff\xc3"
    link = app.root.as_posix().encode() + b"/" + name
    os.symlink("/bin/sleep", link)
    sleeper = subprocess.Popen([link, "60"])
    try:
        environment = {"PATH": BASE_PATH, "MALLOC_CONF": "caf\u00e9", "JEMALLOC_PROCESS_TYPES": "web,caf\u00e9"}
        environment_bytes = {key.encode(): value.encode() for key, value in environment.items()}
        environment_bytes[b"JEMALLOC_ENABLED"] = b"\xfftrue"
        environment_bytes[b"DYNO"] = b"w\xe9b.1"
        for arguments in ([], [str(sleeper.pid)]):
            done = subprocess.run([b"bash", str(check).encode(), b"--json",
                                   *[argument.encode() for argument in arguments]],
                                  env=environment_bytes, capture_output=True, timeout=60)
            data = parse_check(done.stdout.decode("utf-8"), done.returncode, done.stderr.decode("utf-8", "replace"))
            assert data["settings"]["MALLOC_CONF"] == "caf\u00e9"
            assert data["settings"]["JEMALLOC_ENABLED"] == "\ufffdtrue"
            assert data["settings"]["DYNO"] == "w\ufffdb.1"
            if arguments:
                (process,) = data["processes"]
                assert process["comm"] == "x\ufffd\ufffd\ufffd"
    finally:
        sleeper.kill()
        sleeper.wait()
