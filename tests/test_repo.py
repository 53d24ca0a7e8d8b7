"""The template repository keeps its own gates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import ROOT, run, tool_env

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "gate",
    [
        ["black", "--check", "."],
        ["isort", "--check-only", "."],
        ["ruff", "check", "."],
        ["mypy"],
    ],
    ids=lambda gate: gate[0],
)
def test_template_repo_passes_its_gates(gate: list[str]) -> None:
    run([str(BIN / gate[0]), *gate[1:]], ROOT, tool_env()).check()
