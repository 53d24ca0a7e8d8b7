"""The template's Python passes the generated service's linters and type
checker, for every answer set, without generating and gating a whole service.

The type check runs in the fast tier once mypy's cache for the answer set
exists here; before that (a new machine: about 25 s of CPU per Python
version to analyse the dependencies) it is a slow test, and the first full
run warms the cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import answer_sets
from tests.support.template_code import (
    Finding,
    dependencies,
    lint,
    rendered,
    typecheck,
    typecheck_is_warm,
    typecheck_venv,
)

NAMES = sorted(answer_sets())


def report(name: str, findings: list[Finding]) -> str:
    lines = [f"answer set {name}: {len(findings)} finding(s)"]
    return "\n".join([*lines, *map(str, findings)])


@pytest.mark.parametrize("name", NAMES)
def test_the_python_a_copy_gets_passes_black_isort_and_ruff(name: str) -> None:
    findings = lint(rendered(name))

    assert not findings, report(name, findings)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=() if typecheck_is_warm(name) else pytest.mark.slow)
        for name in NAMES
    ],
)
def test_the_python_a_copy_gets_passes_mypy(name: str) -> None:
    venv = typecheck_venv(dependencies([rendered(other) for other in NAMES]))

    findings = typecheck(rendered(name), name, venv)

    assert not findings, report(name, findings)


def test_a_lint_error_names_its_tool_template_file_and_line(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(rendered("default"), project)
    health = project / "app" / "health.py"
    lines = health.read_text().splitlines()
    health.write_text("\n".join([*lines, "import os", "x=[1,2]", ""]))

    findings = lint(project, ["app/health.py"])

    source = "template/app/health.py"
    assert any(
        str(f).startswith(f"ruff: {source}:{len(lines) + 1}: F401") for f in findings
    ), findings
    after = {f.tool for f in findings if f.path == source and f.line > len(lines)}
    assert after == {"black", "isort", "ruff"}, findings
