"""The template repository keeps its own gates."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, git, run, tool_env

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


def scan(files: list[str], tmp_path: Path) -> int:
    """detect-secrets' hook on `files` against the repository's baseline (a
    copy: the hook rewrites a baseline whose line numbers moved)."""
    baseline = tmp_path / "baseline.json"
    shutil.copyfile(ROOT / ".secrets.baseline", baseline)
    hook = [str(BIN / "detect-secrets-hook"), "--baseline", str(baseline), *files]
    result = run(hook, ROOT, tool_env())
    print(result.output)
    return result.returncode


def test_the_repository_holds_no_secret_beyond_its_baseline(tmp_path: Path) -> None:
    """Every file git would commit (CI runs the same scan, job `static`)."""
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    files = [name for name in listed.split("\0") if name]

    assert len(files) > 100
    assert scan(files, tmp_path) == 0


def test_the_scan_fails_on_a_new_secret(tmp_path: Path) -> None:
    leak = tmp_path / "leak.py"
    leak.write_text('AWS_KEY = "' + "AKIA" + "Q3EGRIPAJ7FXKNZD" + '"\n')

    assert scan([str(leak)], tmp_path) != 0
