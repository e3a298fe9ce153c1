"""How `pytest --numprocesses N --dist loadscope` shares the stack tier between its workers.

A stack's tests share what is made once per stack and process: the stack's buildpack image, its
builder, the app built once (built_app), the probes. Split across workers, each worker would make
them again (a jemalloc compile each, minutes). So in this suite a scope is a stack: every test of
a stack runs in one worker, the largest stacks first, and a test of no stack (the soak smokes,
the lint) is a scope with the rest of its module.

pytest-xdist's own `loadgroup` cannot do this with pytest 9: it renames a node by setting
`item._nodeid`, which pytest 9 no longer reads, so its groups never reach the scheduler.
"""

from __future__ import annotations

import re

from xdist.scheduler import LoadScopeScheduling

from .stacks import ARM64_STAND_IN, STACKS

_STACK_NAMES = sorted([*STACKS, ARM64_STAND_IN.name], key=len, reverse=True)
# A stack is the first of a test's parameters (conftest.py parametrizes stack_name at session
# scope, before the test's own parameters): "test_x[heroku-24]", "test_x[heroku-24-read-only]".
_STACK_PARAMETER = re.compile(r"::[^:\[]+\[(" + "|".join(map(re.escape, _STACK_NAMES)) + r")(?:-|\])")


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its stack's name, else its module's path."""
    match = _STACK_PARAMETER.search(nodeid)
    if match:
        return match[1]
    return nodeid.split("::", 1)[0]


class StackScheduling(LoadScopeScheduling):
    """LoadScopeScheduling with a stack (or a module without one) as the scope."""

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)
