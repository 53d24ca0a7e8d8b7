"""Task after `copier copy` and `copier update`: lock the service's dependencies.

`uv lock` writes uv.lock on copy and refreshes it on update. When a template
release adds a dependency next to one the owner added (uv.lock lists them in
alphabetical order), copier's three-way merge leaves conflict markers in
uv.lock. A lock file is not merged by hand: it is rebuilt from the owner's
last committed lock (their pinned versions stay) by `uv lock`, which adds
what the merged pyproject.toml now asks for, and is staged as resolved.

During `copier update`, copier also renders the old and the new release in
temporary folders and runs this task there: those locks only give the merge
its base, and `uv lock` is first tried there from uv's cache (`--offline`,
falling back to the index), which spares an update one or two resolutions
against the index (1-6 s each here). The service's own lock is always
resolved against the index.

A lock that cannot be written fails the copy or update (exit 1) with the
cause and the command to run once it is fixed: a service whose lock is stale
must not look updated (Renovate would open its pull request all the same).
Standard library only; run from the project's root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LOCK = Path("uv.lock")
MARKER = "\n<<<<<<< "
PYTHON_VERSION = Path(".python-version")


def find_uv() -> str | None:
    """uv beside the Python running copier (its virtual environment or pipx
    venv), else on PATH: a version manager's shim on PATH may answer for
    another Python than the one copier runs on."""
    beside = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    return str(beside) if beside.is_file() else shutil.which("uv")


def committed_lock() -> str | None:
    shown = subprocess.run(
        ["git", "show", "HEAD:uv.lock"], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def missing_python(uv: str) -> str | None:
    """The Python the service asks for, when uv finds no such interpreter
    (with UV_PYTHON and .python-version, as `uv lock` looks for it)."""
    found = subprocess.run(
        [uv, "python", "find"], capture_output=True, text=True, check=False
    )
    if found.returncode == 0:
        return None
    if PYTHON_VERSION.exists():
        return PYTHON_VERSION.read_text().strip()
    return "(see .python-version)"


def missing_python_message(wanted: str) -> str:
    return (
        f"Python {wanted} (the python_version answer) was not found, so"
        " uv.lock was not written: install it, or choose a Python you"
        " have with --data python_version=3.X, then run: uv lock"
    )


def scratch_render() -> bool:
    """Whether this is one of copier's temporary renders of an update: the
    service itself is in a git repository (copier updates no other), they
    are not."""
    if os.environ.get("COPIER_OPERATION") != "update":
        return False
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    return inside.returncode != 0


def fail(message: str) -> int:
    # Copier removes the folder of a copy whose task failed; an update stays.
    if os.environ.get("COPIER_OPERATION") == "copy":
        message += " (or fix it and run the copy again)"
    print(f"error: {message}", file=sys.stderr)
    return 1


def main() -> int:
    uv = find_uv()
    if uv is None:
        return fail(
            "uv is not on PATH, so uv.lock was not written: install uv"
            " (pip install uv), then run: uv lock"
        )
    rebuilt = False
    if LOCK.exists() and MARKER in "\n" + LOCK.read_text():
        previous = committed_lock()
        if previous is None:
            LOCK.unlink()
        else:
            LOCK.write_text(previous)
        rebuilt = True
    if scratch_render():
        cached = subprocess.run(
            [uv, "lock", "--quiet", "--offline"], capture_output=True, check=False
        )
        if cached.returncode == 0:
            return 0
    wanted = missing_python(uv)
    # Without the Python, uv downloads it where the user lets it
    # (UV_PYTHON_DOWNLOADS); offline, one try, and one line from us rather
    # than its retries.
    locked = subprocess.run(
        [uv, "lock", "--quiet"],
        capture_output=wanted is not None,
        text=True,
        env=None if wanted is None else {**os.environ, "UV_HTTP_RETRIES": "0"},
        check=False,
    )
    if locked.returncode != 0:
        if wanted is not None and missing_python(uv) is not None:
            return fail(missing_python_message(wanted))
        if wanted is not None:  # got the Python, then failed: say uv's why
            print(locked.stderr, end="", file=sys.stderr)
        return fail(
            f"uv lock exited {locked.returncode} (its message is above), so"
            " uv.lock is not up to date: fix the cause, then run: uv lock"
        )
    if rebuilt:
        subprocess.run(["git", "add", "uv.lock"], check=False)
        print(
            "uv.lock had conflicts: rebuilt from the committed lock and pyproject.toml"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
