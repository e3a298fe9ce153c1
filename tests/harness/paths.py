"""Where things are: this repository, the project's shared material, and the harness's cache."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("JEMALLOC_BUILDPACK_SHARED", REPO.parent / "shared")).resolve()
# Downloads and logs of the harness itself; .gitignore'd.
CACHE = REPO / ".cache"
JEMALLOC_FIXTURES = SHARED / "jemalloc" / "fixtures"
