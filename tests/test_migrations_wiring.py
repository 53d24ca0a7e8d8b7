"""How copier.yml runs migrations_copier/: every release script is wired for
both stages with copier's own Python, every update ends by relocking, and,
since that Python has only copier's dependencies, the scripts use the
standard library only."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.migrations import MIGRATIONS, SCRIPT


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the modules a Python file imports (absolute imports)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize(
    "path", sorted(MIGRATIONS.glob("*.py")), ids=lambda path: path.name
)
def test_migrations_use_the_standard_library_only(path: Path) -> None:
    siblings = {script.stem for script in MIGRATIONS.glob("_*.py")}
    allowed = {*sys.stdlib_module_names, *siblings, "__future__"}

    assert imported_modules(path) - allowed == set()


MIGRATION_SCRIPTS = sorted(
    path.name for path in MIGRATIONS.glob("v*.py") if SCRIPT.match(path.name)
)

STAGE = re.compile(r"_stage\s*==\s*['\"](before|after)['\"]")


def migrations_wired() -> list[dict[str, Any]]:
    """The release migrations (entries with a version)."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    entries: list[dict[str, Any]] = config["_migrations"]
    return [entry for entry in entries if "version" in entry]


def test_every_update_ends_by_rebuilding_a_conflicted_lock() -> None:
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    last = config["_migrations"][-1]
    relock = ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/migrations_copier/_relock.py"]  # fmt: skip

    assert "version" not in last  # copier runs it on every update
    assert STAGE.search(last["when"]).group(1) == "after"  # type: ignore[union-attr]
    assert last["command"] == relock
    # And after a copy, before the first commit (which holds the lock), made
    # only by a copy.
    first, committed = config["_tasks"]
    assert first["command"] == relock
    assert committed["command"][1].endswith("/migrations_copier/_first_commit.py")
    assert committed["when"] == "{{ _copier_operation == 'copy' }}"


def wired_script(entry: dict[str, Any]) -> tuple[str, str]:
    """The script and stage a `_migrations` entry runs."""
    version = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", str(entry["version"]))
    assert version, f"version {entry['version']!r} is not vX.Y.Z"
    script = "v{}_{}_{}.py".format(*version.groups())
    stage = STAGE.search(str(entry.get("when", "")))
    assert stage, f"{entry} has no explicit `when` stage"
    return script, stage.group(1)


def test_every_wired_migration_runs_an_existing_script_with_copiers_python() -> None:
    entries = migrations_wired()
    assert entries
    for entry in entries:
        script, stage = wired_script(entry)
        assert script in MIGRATION_SCRIPTS, f"{entry['version']}: no {script}"
        command = entry["command"]
        assert isinstance(command, list), entry
        assert command[0] == "{{ _copier_python }}"
        assert (
            command[1] == f"{{{{ _copier_conf.src_path }}}}/migrations_copier/{script}"
        )
        assert command[2] == stage


def test_every_migration_script_is_wired_for_both_stages() -> None:
    wired = {wired_script(entry) for entry in migrations_wired()}
    assert MIGRATION_SCRIPTS
    for script in MIGRATION_SCRIPTS:
        assert {(script, "before"), (script, "after")} <= wired, script
