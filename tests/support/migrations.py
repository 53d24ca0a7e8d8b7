"""The template's migration tables, read from migrations_copier/ for tests."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support import ROOT

MIGRATIONS = ROOT / "migrations_copier"
SCRIPT = re.compile(r"^v(\d+)_(\d+)_(\d+)\.py$")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_lib() -> ModuleType:
    """migrations_copier/_lib, imported as a script imports it when copier
    runs it: from migrations_copier/ put on sys.path."""
    if str(MIGRATIONS) not in sys.path:
        sys.path.insert(0, str(MIGRATIONS))
    return importlib.import_module("_lib")


def all_changes() -> list[Any]:
    """Every release's Changes table, oldest first."""
    scripts = sorted(
        (p for p in MIGRATIONS.glob("v*.py") if SCRIPT.match(p.name)),
        key=lambda p: version_key(p.stem),
    )
    return [load(path).CHANGES for path in scripts]


def answers_as_of(release: str, answers: dict[str, Any]) -> dict[str, Any]:
    """Today's answers, in the names and values an older release asked for."""
    result = dict(answers)
    for changes in reversed(all_changes()):
        if version_key(changes.version) <= version_key(release):
            continue
        for question, values in changes.changed_choices.items():
            inverse = {new: old for old, new in values.items()}
            if result.get(question) in inverse:
                result[question] = inverse[result[question]]
        for old, new in changes.renamed_questions.items():
            if new in result:
                result[old] = result.pop(new)
        for added in changes.added_answers:
            result.pop(added, None)
    return result


def answers_after_update(release: str, answers: dict[str, Any]) -> dict[str, Any]:
    """What a service made at `release` with these answers records after an
    update to today: questions added since then get the migration's answer."""
    result = dict(answers)
    for changes in all_changes():
        if version_key(changes.version) > version_key(release):
            result.update(changes.added_answers)
    return result


def migrations_crossed(old: str, new: str) -> list[str]:
    """Versions whose migrations run when updating from old to new."""
    return [
        changes.version
        for changes in all_changes()
        if version_key(old) < version_key(changes.version) <= version_key(new)
    ]
