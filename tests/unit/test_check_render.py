"""jemalloc-check's rendering (runtime/lib/check-render.sh) of values that may hold any byte but
NUL: process names, paths from /proc/PID/maps, the environment. JSON strings are valid UTF-8 JSON
that decode to the value with each byte that is not part of well-formed UTF-8 replaced by
U+FFFD; text is the value with those bytes and every control character replaced by '?'. Long
values exercise the cutting into pieces that keeps the byte walks linear (their speed is not
measured here).
"""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from harness.parsers import well_formed_utf8
from harness.paths import REPO

RENDER = REPO / "runtime/lib/check-render.sh"

# Read as bytes (C locale: in a UTF-8 locale bash's read misreads a value that ends inside a
# multibyte sequence), rendered in the UTF-8 locale of a dyno: the functions must not care.
LOOP = """source "$1"
LC_ALL=C
while IFS= read -r -d '' value; do
	LC_ALL=C.UTF-8
	"$2" "$value" "${@:3}" result
	LC_ALL=C
	printf '%s\\0' "$result"
done
"""


def render(function: str, values: list[bytes], *arguments: str) -> list[bytes]:
    """FUNCTION VALUE ARGUMENTS... RESULT_VAR for each of VALUES, in one bash."""
    done = subprocess.run(["bash", "-c", LOOP, "render", str(RENDER), function, *arguments],
                          input=b"".join(value + b"\0" for value in values), capture_output=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    results = done.stdout.split(b"\0")[:-1]
    assert len(results) == len(values)
    return results


def printable(value: bytes) -> str:
    return "".join("?" if ord(char) < 0x20 or 0x7f <= ord(char) <= 0x9f else char
                   for char in well_formed_utf8(value, "?"))


TOKENS = [b"a", b" ", b'"', b"\\", b"\t", b"\n", b"\x01", b"\x1b", b"\x1f", b"\x7f", b"\xc3\xa9", b"\xe2\x82\xac",
          b"\xf0\x9f\x98\x80", b"\xc2\x85", b"\xf4\x8f\xbf\xbf", b"\xef\xbf\xbf", b"\xff", b"\xfe", b"\xc3", b"\xe2\x82",
          b"\x80", b"\xbf", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80"]
EDGES = [b"", b"plain ascii", b"x\xe9\xff\xc3", b"a\x1fb\x1ec\td\xff\xfe\"q\\z", b"\xe2\x82", b"\xf0\x9f\x98",
         b"caf\xc3\xa9", b"\xc2\x9b[31m", b"\x80" * 5, "\u00e9".encode() * 300, b"\xff" * 700,
         # A sequence across each place a long value could be cut.
         b"a" * 255 + "\U0001f600".encode() * 3 + b"b" * 300, b"a" * 511 + b"\xe2\x82\xac" + b"\x80" * 9]


def values(count: int, longest: int, seed: int) -> list[bytes]:
    generator = random.Random(seed)
    return [b"".join(generator.choice(TOKENS) for _ in range(generator.randint(1, longest))) for _ in range(count)]


CASES = EDGES + values(100, 40, 1) + values(3, 3000, 2)


def test_json_strings_are_valid_json_of_the_well_formed_bytes():
    for value, result in zip(CASES, render("render::json_string", CASES)):
        text = result.decode("utf-8")
        assert json.loads(text) == well_formed_utf8(value, "\ufffd"), value
        assert not [char for char in text if ord(char) < 0x20], text


def test_text_keeps_every_value_printable_valid_utf8_and_on_one_line():
    for value, result in zip(CASES, render("render::printable", CASES)):
        assert result.decode("utf-8") == printable(value), value


@pytest.mark.parametrize("replacement", ["?", "\\ufffd"])
def test_valid_utf8_replaces_each_byte_that_is_not_part_of_a_sequence(replacement):
    for value, result in zip(CASES, render("render::valid_utf8", CASES, replacement)):
        assert result.decode("utf-8") == well_formed_utf8(value, replacement), value

