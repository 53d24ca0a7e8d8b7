"""The Pythons this machine has, for the default answer to python_version.

`copier copy --defaults` should make a service that locks and starts here
without downloading an interpreter (offline machines cannot, and a version
manager's shim may answer for another Python than the one asked for). So the
default is the first of the preferred versions that uv finds, the way the
copy's `uv lock` will look for it; the first preferred one where uv finds
none (uv then downloads it, where it can).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension


def find_uv() -> str | None:
    """uv beside the Python running copier, else on PATH (as the copy's
    task, migrations_copier/_relock.py, finds it)."""
    beside = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    return str(beside) if beside.is_file() else shutil.which("uv")


@functools.cache
def installed_pythons() -> frozenset[str]:
    """The CPython versions ("3.12") uv finds here, without downloading."""
    uv = find_uv()
    if uv is None:
        return frozenset()
    try:
        listed = subprocess.run(
            [uv, "python", "list", "--only-installed", "--output-format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        entries = json.loads(listed.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return frozenset()
    return frozenset(
        f"{entry['version_parts']['major']}.{entry['version_parts']['minor']}"
        for entry in entries
        if entry.get("implementation") == "cpython"
        and entry.get("variant", "default") == "default"
    )


def first_installed(preferred: list[str]) -> str:
    """The first of `preferred` that uv finds here, else the first of all."""
    present = installed_pythons()
    return next((version for version in preferred if version in present), preferred[0])


class PythonVersions(Extension):
    """Registers `first_installed` in Copier's Jinja environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["first_installed"] = first_installed
