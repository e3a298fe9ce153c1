"""The preload rules (runtime/lib/preload-rules.sh) as everything that uses them applies them:
the profile.d shim under bash and dash, the CNB exec.d program and jemalloc-check, fed the same
table of cases (tests/rules_cases.py), must agree with it and so with each other.

The install is faked in a temporary directory laid out as the CNB layer (bin/, exec.d/,
libexec/jemalloc-buildpack/, tree/lib/), which jemalloc-check recognises from its own path; the
shim is a copy with its /app/vendor/jemalloc pointed at tree/. The library is a stand-in: a copy
of this machine's libz named libjemalloc.so.2, so that what jemalloc-check reads from /proc (is
the library mapped in it?) is true, not faked.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.paths import REPO
from rules_cases import CASES, ENABLED, METRICS_VALUES, Case, fill

SHELLS = ["bash", "dash"]
PATH = "/usr/local/bin:/usr/bin:/bin"
RULES = REPO / "runtime/lib/preload-rules.sh"


@dataclass
class Install:
    root: Path

    @property
    def prefix(self) -> Path:
        return self.root / "tree"

    @property
    def library(self) -> str:
        return str(self.prefix / "lib/libjemalloc.so")

    @property
    def shim(self) -> Path:
        return self.root / "shim.sh"

    @property
    def app_library(self) -> str:
        return APP_LIBRARY


def stand_in_library() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/libz.so.1") + glob.glob("/lib/*/libz.so.1") + glob.glob("/usr/lib*/libz.so.1"))
    return found[0] if found else None


APP_LIBRARY = stand_in_library() or "/nonexistent/libz.so.1"


def make_install(root: Path) -> Install:
    if not stand_in_library():
        pytest.skip("no libz.so.1 on this machine to stand in for libjemalloc.so")
    (root / "bin").mkdir(parents=True)
    (root / "exec.d").mkdir()
    (root / "tree/lib").mkdir(parents=True)
    (root / "tree/bin").mkdir()
    shutil.copytree(REPO / "runtime/lib", root / "libexec/jemalloc-buildpack")
    for script in (REPO / "runtime/bin").iterdir():
        shutil.copy2(script, root / "bin" / script.name)
    shutil.copy2(REPO / "runtime/exec.d/jemalloc", root / "exec.d/jemalloc")
    shutil.copy(APP_LIBRARY, root / "tree/lib/libjemalloc.so.2")
    (root / "tree/lib/libjemalloc.so").symlink_to("libjemalloc.so.2")
    # The shim looks for the rules under its prefix, as in a slug.
    (root / "tree/libexec").mkdir()
    (root / "tree/libexec/jemalloc-buildpack").symlink_to(root / "libexec/jemalloc-buildpack")
    shim, count = re.subn(r"^__jemalloc_bp_dir=/app/vendor/jemalloc$", f"__jemalloc_bp_dir={root}/tree",
                          (REPO / "profile.d/jemalloc.sh").read_text(), flags=re.MULTILINE)
    assert count == 1, "the shim no longer sets its prefix in one line of its own"
    (root / "shim.sh").write_text(shim)
    return Install(root)


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Install:
    return make_install(tmp_path_factory.mktemp("layer"))


@pytest.fixture(scope="module", params=SHELLS)
def shell(request) -> str:
    if not shutil.which(request.param):
        pytest.fail(f"{request.param} is not installed (apt-get install -y {request.param})")
    return request.param


def environment(case: Case, install: Install) -> dict[str, str]:
    return {"PATH": PATH, **{name: fill(value, install.library, install.app_library) for name, value in case.env.items()}}


SHOW = 'printf "%s\\n" "${LD_PRELOAD-(unset)}" "${MALLOC_ARENA_MAX-(unset)}"'


def source_shim(shell: str, install: Install, env: dict[str, str], script: str = SHOW) -> subprocess.CompletedProcess:
    # On stdin, so that bash's `set` does not show the script (BASH_EXECUTION_STRING).
    return subprocess.run([shell, "-s"], input=f'set -eu\n. "{install.shim}"\n{script}', env=env,
                          capture_output=True, text=True, timeout=20)


def unset(value: str) -> str | None:
    return None if value == "(unset)" else value


def run_exec_d(install: Install, env, text: bool = True) -> subprocess.CompletedProcess:
    """The CNB exec.d program in ENV (bytes values unless TEXT), with what it writes to FD 3 (the
    TOML) as its stdout."""
    return subprocess.run(["bash", "-c", f'"{install.root}/exec.d/jemalloc" 3>&1 >/dev/null'], env=env,
                          capture_output=True, text=text, timeout=20)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_shim_exec_d_and_jemalloc_check_agree(install, shell, case):
    env = environment(case, install)
    shim = source_shim(shell, install, env)
    assert shim.returncode == 0, shim.stderr
    preload, arena_max = (unset(line) for line in shim.stdout.split("\n")[:2])
    assert preload == fill(case.preload, install.library, install.app_library)
    assert arena_max == case.arena_max
    if case.warning:
        (warning,) = shim.stderr.splitlines()
        assert warning.startswith(f" !     jemalloc: {case.warning}='") and "is not understood" in warning
    else:
        assert shim.stderr == ""

    # The CNB exec.d program writes what the shim changes, and nothing else, and warns as it does.
    exec_d = run_exec_d(install, env)
    assert exec_d.returncode == 0
    assert exec_d.stderr == shim.stderr
    changes = {}
    if preload is not None and preload != env.get("LD_PRELOAD"):
        changes["LD_PRELOAD"] = preload
    if arena_max is not None and "MALLOC_ARENA_MAX" not in env:
        changes["MALLOC_ARENA_MAX"] = arena_max
    assert tomllib.loads(exec_d.stdout) == changes

    # jemalloc-check, started in the environment the shim leaves, explains it with the same rules
    # and finds in its own /proc/self/maps what the shim decided.
    after = {name: value for name, value in env.items() if name not in ("LD_PRELOAD", "MALLOC_ARENA_MAX")}
    after.update({name: value for name, value in (("LD_PRELOAD", preload), ("MALLOC_ARENA_MAX", arena_max))
                  if value is not None})
    check = subprocess.run([install.root / "bin/jemalloc-check", "--json"], env=after, capture_output=True,
                           text=True, timeout=30)
    answer = json.loads(check.stdout)
    assert answer["reason"] == case.reason
    assert answer["active"] is case.active and check.returncode == (0 if case.active else 1)
    assert (answer["mapped"] == str(install.prefix / "lib/libjemalloc.so.2")) is case.active
    # The stand-in library runs no background thread; without jemalloc there is none to ask about.
    assert answer["background_thread"] is (False if case.active else None)
    assert answer["settings"]["JEMALLOC_BACKGROUND_THREAD_AFTER_FORK"] == case.env.get("JEMALLOC_BACKGROUND_THREAD_AFTER_FORK")
    assert answer["settings"]["background_thread_after_fork"] == case.after_fork


AFTER_FORK_CASES = [case for case in CASES if case.id.startswith("after-fork[")]
AFTER_FORK_WORDS = {
    "on": "on: forked children get the background thread back",
    "off": "off: forked children run without the background thread (JEMALLOC_BACKGROUND_THREAD_AFTER_FORK={value})",
    "invalid": "on, as by default: JEMALLOC_BACKGROUND_THREAD_AFTER_FORK='{raw}' is not understood (use true or false);"
               " forked children get the background thread back",
}


@pytest.mark.parametrize("case", AFTER_FORK_CASES, ids=[case.id for case in AFTER_FORK_CASES])
def test_jemalloc_check_shows_the_after_fork_switch_as_set_and_as_read(install, case):
    env = environment(case, install)
    if case.on:
        env["LD_PRELOAD"] = install.library
    check = subprocess.run([install.root / "bin/jemalloc-check"], env=env, capture_output=True, text=True, timeout=30)
    fields = dict(re.fullmatch(r"  (\S+) +(.*)", line).groups() for line in check.stdout.splitlines()[1:])
    raw = case.env.get("JEMALLOC_BACKGROUND_THREAD_AFTER_FORK")
    words = AFTER_FORK_WORDS[case.after_fork].format(value=(raw or "").strip(" "), raw=raw)
    if case.after_fork == "on" and not (raw or "").strip(" "):
        words += " (the default)"
    assert fields["after-fork"] == words
    shown = "(unset)" if raw is None else "''" if raw == "" else f"'{raw}'" if " " in raw else raw
    assert f" JEMALLOC_BACKGROUND_THREAD_AFTER_FORK={shown} " in f" {fields['settings']} "


def test_the_cases_cover_every_rule():
    reasons = {re.sub(r"[=(' ].*", "", case.reason.split(": ", 1)[1]) for case in CASES}
    assert {"JEMALLOC_ENABLED", "process", "DYNO", "LD_PRELOAD"} <= reasons
    assert any(case.env.get("DYNO", "").count("-") >= 2 for case in CASES), "no Heroku Fir DYNO"
    assert any("DYNO" not in case.env for case in CASES), "no unset DYNO"
    assert {case.after_fork for case in CASES} == {"on", "off", "invalid"}
    assert {case.warning for case in CASES} == {None, "JEMALLOC_ENABLED", "JEMALLOC_BACKGROUND_THREAD_AFTER_FORK",
                                                "JEMALLOC_METRICS"}


@pytest.mark.parametrize("value,expected", METRICS_VALUES, ids=[f"{value!r}" for value, _ in METRICS_VALUES])
def test_the_rules_read_jemalloc_metrics_as_off_an_interval_or_invalid(shell, value, expected):
    script = f""". "{RULES}"
__jemalloc_rules_read_metrics "${{JEMALLOC_METRICS:-}}"
printf '%s' "$__jemalloc_rules_metrics"
"""
    env = {"PATH": PATH, **({} if value is None else {"JEMALLOC_METRICS": value})}
    result = subprocess.run([shell, "-euc", script], env=env, capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")


# The shim's own contract, in both shells.

FUNCTIONS = re.findall(r"^(__jemalloc_rules_\w+)\(\)", RULES.read_text(), re.MULTILINE)
LEFTOVERS = "".join(f'if command -v {name} >/dev/null; then echo "left: {name}"; fi\n' for name in FUNCTIONS)


def test_sourcing_twice_under_set_eu_is_idempotent_and_leaves_nothing_defined(install, shell):
    env = {"PATH": PATH, "JEMALLOC_ENABLED": "true", "DYNO": "web.1", "LD_PRELOAD": APP_LIBRARY}
    script = f"""
before_options="$(set +o)"
once="$(export -p)"
. "{install.shim}"
twice="$(export -p)"
[ "$once" = "$twice" ] && echo idempotent
[ "$before_options" = "$(set +o)" ] && echo options-unchanged
set | grep -q __jemalloc || echo no-variables
{LEFTOVERS}
echo "PATH=$PATH"
"""
    result = source_shim(shell, install, env, script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["idempotent", "options-unchanged", "no-variables"], result.stdout
    assert lines[3] == f"PATH={install.prefix}/bin:{PATH}"
    assert len(FUNCTIONS) >= 5 and result.stderr == ""


def test_a_missing_library_leaves_the_environment_alone_with_one_warning(tmp_path, shell):
    install = make_install(tmp_path)
    (install.prefix / "lib/libjemalloc.so.2").unlink()
    result = source_shim(shell, install, {"PATH": PATH, "JEMALLOC_ENABLED": "true"})
    assert result.stdout == "(unset)\n(unset)\n"
    (warning,) = result.stderr.splitlines()
    assert warning.startswith(f" !     jemalloc: {install.library} is missing, so jemalloc is not preloaded")


@pytest.mark.parametrize("enabled", [None, "true"])
def test_missing_rules_leave_the_environment_alone_and_warn_only_when_asked_for(tmp_path, shell, enabled):
    install = make_install(tmp_path)
    shutil.rmtree(install.root / "libexec")
    env = {"PATH": PATH, **({} if enabled is None else {"JEMALLOC_ENABLED": enabled})}
    result = source_shim(shell, install, env, SHOW + "\n" + LEFTOVERS)
    assert result.returncode == 0
    assert result.stdout == "(unset)\n(unset)\n"
    if enabled is None:
        assert result.stderr == ""
    else:
        (warning,) = result.stderr.splitlines()
        assert warning.startswith(" !     jemalloc: ") and "preload-rules.sh is missing" in warning


# What exec.d writes is TOML, which is UTF-8: an LD_PRELOAD of the app's (entries after the library)
# that is UTF-8 is written, escaped where TOML needs it; one that is not cannot be. The names are
# of copies of the stand-in library, so that ld.so, which preloads them into exec.d's own bash,
# finds them and says nothing.
TOML_NAMES = {
    "quote and backslash": 'lib"q\\.so',
    "tab": "a\tb.so",
    "newline": "a\nb.so",
    "control characters": "a\x01\x1b\x7f\x1f.so",
    "two-byte UTF-8": "caf\u00e9.so",
    "three- and four-byte UTF-8": "\u20ac\U0001f600.so",
    "C1 control character": "a\u0085b.so",
    "the largest code point": "\U0010ffff.so",
}
NOT_UTF8_NAMES = {
    "Latin-1": b"caf\xe9.so",
    "0xff": b"\xff.so",
    "surrogate": b"\xed\xa0\x80.so",
    "overlong": b"\xc0\xaf.so",
    "above U+10FFFF": b"\xf4\x90\x80\x80.so",
    "cut short": b"\xe2\x82",
    "stray continuation byte": b"caf\xc3\xa9\xa9.so",
}


def app_library_named(directory: Path, name: bytes) -> bytes:
    """The path of a copy of the stand-in library named NAME in DIRECTORY."""
    path = bytes(directory) + b"/" + name
    shutil.copy(APP_LIBRARY, path)
    return path


@pytest.mark.parametrize("kind", TOML_NAMES)
def test_exec_d_writes_an_ld_preload_that_is_utf8_as_valid_toml(install, tmp_path, kind):
    entry = app_library_named(tmp_path, TOML_NAMES[kind].encode())
    env = {"PATH": PATH.encode(), **{name.encode(): value.encode() for name, value in ENABLED.items()},
           b"LD_PRELOAD": entry}
    exec_d = run_exec_d(install, env, text=False)
    assert exec_d.returncode == 0 and exec_d.stderr == b""
    assert tomllib.loads(exec_d.stdout.decode("utf-8")) == {"LD_PRELOAD": f"{install.library}:{entry.decode()}",
                                                            "MALLOC_ARENA_MAX": "2"}


@pytest.mark.parametrize("kind", NOT_UTF8_NAMES)
def test_exec_d_leaves_an_ld_preload_that_is_not_utf8_as_it_was_and_says_so(install, tmp_path, kind):
    env = {"PATH": PATH.encode(), **{name.encode(): value.encode() for name, value in ENABLED.items()},
           b"LD_PRELOAD": app_library_named(tmp_path, NOT_UTF8_NAMES[kind])}
    exec_d = run_exec_d(install, env, text=False)
    assert exec_d.returncode == 0
    # Nothing at all: the launcher keeps the process's own LD_PRELOAD, as with jemalloc off.
    assert exec_d.stdout == b"" and tomllib.loads(exec_d.stdout.decode("utf-8")) == {}
    (warning,) = exec_d.stderr.decode("utf-8").splitlines()
    assert warning.startswith(" !     jemalloc: LD_PRELOAD ") and "not UTF-8" in warning
    assert "jemalloc is not preloaded" in warning


def test_the_wrapper_puts_the_library_first_and_drops_its_copies_here_and_at_app(install):
    env = {"PATH": PATH, "LD_PRELOAD": f"/app/vendor/jemalloc/lib/libjemalloc.so {install.library}.2::{APP_LIBRARY}"}
    result = subprocess.run([install.root / "bin/jemalloc.sh", "sh", "-c", SHOW], env=env, capture_output=True,
                            text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{install.library}:{APP_LIBRARY}\n2\n"
