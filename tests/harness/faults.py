"""Faults on demand for bin/compile: a small stand-in for the jemalloc source, and command wrappers.

MINI SOURCE. A real jemalloc build takes 40-120 s; the fault tests need many builds, and what
they test is the buildpack around the compiler, not jemalloc. `mini_source()` makes a source
tarball that the buildpack treats exactly like jemalloc's (configure, `make build_lib_shared`,
`make install_lib_shared install_bin`, strip) and that builds in a second: a shared library
named libjemalloc.so.2 with one function, and a jemalloc-config script. It is served with its
own JEMALLOC_CHECKSUM, so it has a cache key of its own.

WRAPPERS. `Faults(directory)` writes scripts named like real commands (cp, curl, tar, make...)
into DIRECTORY/bin; put that first on bin/compile's PATH. The first time a wrapped command is
run with an argument containing the wrapper's pattern, it pauses (creates DIRECTORY/paused-NAME
and waits for DIRECTORY/release-NAME) or fails (prints a message, exits with a status); every
other call runs the real command. A test waits for the pause, then does what it tests (signal
the build, run another build), then releases it: the interleaving is fixed by the test, never by
timing. The wrappers are plain bash, so they work on the host and, mounted, in a compile container.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .paths import APP_PREFIX, DEFAULT_VERSION, fixture_path, served_source_config

MINI_C = b"""/* A stand-in for jemalloc: the buildpack only needs a shared library to install. */
const char mini_jemalloc_padding[PADDING] = {1};
const char *mini_jemalloc_version(void) { return "VERSION"; }
"""

# The object whose mallctl and mallctlbymib the build renames for the fork helper, as in jemalloc.
MINI_JEMALLOC_C = b"""/* mallctl as jemalloc's src/jemalloc.c defines it; the stand-in has no settings. */
#include <errno.h>
#include <stddef.h>
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) { return ENOENT; }
int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp, size_t newlen) { return ENOENT; }
"""

MINI_CONFIGURE = b"""#!/bin/sh
# configure of the mini source: knows the options the buildpack looks for.
if [ "$1" = --help ]; then
  echo "  --disable-static   do not build the static library"
  echo "  --disable-doc      do not build the documentation"
  exit 0
fi
echo "configured with: $*" > configured
"""

MINI_MAKEFILE = b"""PREFIX = APP_PREFIX
build_lib_shared: lib/libjemalloc.so.2
src/jemalloc.pic.o: src/jemalloc.c
\t$(CC) -fPIC -c -o $@ src/jemalloc.c
lib/libjemalloc.so.2: src/mini.c src/jemalloc.pic.o
\tmkdir -p lib
\t$(CC) -shared -fPIC -Wl,-soname,libjemalloc.so.2 -o $@ src/mini.c src/jemalloc.pic.o
install_lib_shared:
\tinstall -d $(DESTDIR)$(PREFIX)/lib
\tinstall -m 755 lib/libjemalloc.so.2 $(DESTDIR)$(PREFIX)/lib/
\tln -sf libjemalloc.so.2 $(DESTDIR)$(PREFIX)/lib/libjemalloc.so
install_bin:
\tinstall -d $(DESTDIR)$(PREFIX)/bin
\tinstall -m 755 bin/jemalloc-config $(DESTDIR)$(PREFIX)/bin/
"""

MINI_CONFIG_SCRIPT = b"""#!/bin/sh
echo VERSION
"""


@dataclass(frozen=True)
class Source:
    name: str
    body: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def mini_source(version: str = "5.3.0", layout: str = "top", padding_kib: int = 1,
                filler_kib: int = 0, name: str | None = None) -> Source:
    """The mini source as a .tar.gz.

    layout: "top" (members under jemalloc-VERSION/, as release tarballs have them), "dot-top"
    (./jemalloc-VERSION/..., as `tar -c ./dir` writes them) or "dot-root" (./configure...).
    padding_kib: size of the library's data, to make the built tree (and a cache entry) big.
    filler_kib: a file of zeros in the source, big unpacked and tiny compressed.
    """
    files = {
        "configure": (MINI_CONFIGURE, 0o755),
        "Makefile": (MINI_MAKEFILE.replace(b"APP_PREFIX", APP_PREFIX.encode()), 0o644),
        "src/jemalloc.c": (MINI_JEMALLOC_C, 0o644),
        "src/mini.c": (MINI_C.replace(b"PADDING", str(padding_kib * 1024).encode()).replace(b"VERSION", version.encode()), 0o644),
        "bin/jemalloc-config": (MINI_CONFIG_SCRIPT.replace(b"VERSION", version.encode()), 0o755),
        "VERSION": (f"{version}-0-g0000000000000000000000000000000000000000\n".encode(), 0o644),
    }
    if filler_kib:
        files["filler"] = (bytes(filler_kib * 1024), 0o644)
    prefix = {"top": f"jemalloc-{version}/", "dot-top": f"./jemalloc-{version}/", "dot-root": "./"}[layout]
    output = io.BytesIO()
    # mtime=0: the same arguments make the same bytes, hence the same checksum and cache key.
    with gzip.GzipFile(fileobj=output, mode="wb", mtime=0) as compressed, \
            tarfile.open(fileobj=compressed, mode="w") as archive:
        directories = sorted({str(Path(path).parent) for path in files if "/" in path})
        entries = [("", None)] + [(directory, None) for directory in directories] + sorted(files.items())
        for path, content in entries:
            member = tarfile.TarInfo((prefix + path).rstrip("/") or ".")
            member.mtime = 1700000000
            if content is None:
                member.type = tarfile.DIRTYPE
                member.mode = 0o755
                archive.addfile(member)
            else:
                data, mode = content
                member.size = len(data)
                member.mode = mode
                archive.addfile(member, io.BytesIO(data))
    return Source(name or f"mini-jemalloc-{version}-{layout}-{padding_kib}-{filler_kib}.tar.gz", output.getvalue())


def mini_config(server, source: Source | None = None, **extra: str) -> dict[str, str]:
    """Config vars that build SOURCE (a fresh mini source by default) as jemalloc 5.3.0, served
    by SERVER (a harness.sources.SourceServer) with its own checksum; EXTRA config vars last."""
    source = source or mini_source()
    return served_source_config(server, source.name, source.body, "5.3.0", **extra)


def repacked_release(edit: Callable[[tarfile.TarInfo, bytes | None], bytes | None],
                     version: str = DEFAULT_VERSION) -> bytes:
    """The fixture release of VERSION repacked as a .tar.gz, each member passed through
    EDIT(member, data): it may rename the member, and returns its data (None for a non-file)."""
    output = io.BytesIO()
    with tarfile.open(fixture_path(version)) as original, tarfile.open(fileobj=output, mode="w:gz") as repacked:
        for member in original.getmembers():
            data = edit(member, original.extractfile(member).read() if member.isfile() else None)
            if data is not None:
                member.size = len(data)
            repacked.addfile(member, io.BytesIO(data) if data is not None else None)
    return output.getvalue()


WRAPPER = r"""#!/usr/bin/env bash
# Fault wrapper for NAME (tests/harness/faults.py).
faults=FAULTS
fired=
for arg in "$@"; do
  if [[ $arg == *PATTERN* ]] && mkdir "$faults/fired-NAME" 2>/dev/null; then
    fired=1
    BEFORE
    break
  fi
done
PATH=${PATH//"$faults/bin:"/}
if [[ -n $fired ]]; then
  status=0
  NAME "$@" || status=$?
  AFTER
  exit "$status"
fi
exec NAME "$@"
"""

PAUSE = r""": >"$faults/paused-NAME"
  while [[ ! -e $faults/release-NAME ]]; do sleep 0.05; done"""

FAIL = r"""echo "NAME: MESSAGE" >&2
    exit STATUS"""


class Faults:
    """Wrappers in DIRECTORY/bin; `directory` may be seen elsewhere as `seen_as` (a container mount)."""

    def __init__(self, directory: Path, seen_as: str | None = None):
        self.directory = directory
        self.seen_as = seen_as or str(directory)
        (directory / "bin").mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o777)
        os.chmod(directory / "bin", 0o777)

    def _write(self, name: str, pattern: str, before: str = ":", after: str = ":") -> None:
        script = (WRAPPER.replace("BEFORE", before).replace("AFTER", after).replace("FAULTS", self.seen_as)
                  .replace("PATTERN", _glob_quote(pattern)).replace("NAME", name))
        path = self.directory / "bin" / name
        path.write_text(script)
        path.chmod(0o755)

    def pause(self, name: str, pattern: str, after: bool = False) -> None:
        """The first NAME run with an argument containing PATTERN waits for release(NAME): before
        it runs the real command, or with AFTER, once the real command has done its work."""
        if after:
            self._write(name, pattern, after=PAUSE)
        else:
            self._write(name, pattern, before=PAUSE)

    def fail(self, name: str, pattern: str, message: str = "injected failure", status: int = 1) -> None:
        """The first NAME run with an argument containing PATTERN prints MESSAGE and exits STATUS."""
        self._write(name, pattern, before=FAIL.replace("MESSAGE", message).replace("STATUS", str(status)))

    def path(self, path: str) -> str:
        """PATH with the wrappers first."""
        return f"{self.seen_as}/bin:{path}"

    def paused(self, name: str) -> bool:
        return (self.directory / f"paused-{name}").exists()

    def fired(self, name: str) -> bool:
        return (self.directory / f"fired-{name}").exists()

    def wait_paused(self, name: str, process=None, timeout: float = 300) -> None:
        """Wait until NAME pauses; fail if PROCESS (a Popen) ends first. TIMEOUT is a safety net only."""
        deadline = time.monotonic() + timeout
        while not self.paused(name):
            if process is not None and process.poll() is not None:
                stdout, stderr = process.communicate()
                raise AssertionError(f"the build ended before {name} paused:\n{stdout}{stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not pause within {timeout}s")
            time.sleep(0.05)

    def release(self, name: str) -> None:
        (self.directory / f"release-{name}").touch()


def _glob_quote(pattern: str) -> str:
    """PATTERN as a literal part of a bash glob."""
    return "".join(f"\\{char}" if char in "*?[]\\\"'$`" else char for char in pattern)
