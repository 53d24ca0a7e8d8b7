"""Task after `copier copy` and `copier update`: lock the service's dependencies.

`uv lock` writes uv.lock on copy and refreshes it on update. When a template
release adds a dependency next to one the owner added (uv.lock lists them in
alphabetical order), copier's three-way merge leaves conflict markers in
uv.lock. A lock file is not merged by hand: it is rebuilt from the owner's
last committed lock (their pinned versions stay) by `uv lock`, which adds
what the merged pyproject.toml now asks for, and is staged as resolved.
Standard library only; run from the project's root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LOCK = Path("uv.lock")
MARKER = "\n<<<<<<< "


def committed_lock() -> str | None:
    shown = subprocess.run(
        ["git", "show", "HEAD:uv.lock"], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def main() -> int:
    rebuilt = False
    if LOCK.exists() and MARKER in "\n" + LOCK.read_text():
        previous = committed_lock()
        if previous is None:
            LOCK.unlink()
        else:
            LOCK.write_text(previous)
        rebuilt = True
    locked = subprocess.run(["uv", "lock", "--quiet"], check=False)
    if locked.returncode != 0:
        print("warning: uv.lock was not written; run: uv lock", file=sys.stderr)
        return 0
    if rebuilt:
        subprocess.run(["git", "add", "uv.lock"], check=False)
        print(
            "uv.lock had conflicts: rebuilt from the committed lock and pyproject.toml"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
