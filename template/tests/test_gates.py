"""The gates are listed once, in scripts/gates.py: pre-commit and CI call it,
and name none of its tools themselves."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import gates

ROOT = Path(__file__).resolve().parent.parent
# A gate run on its own (`uv lock`, `uv run ... mypy`) would be a second list.
TOOLS = "|".join(re.escape(g.check[0]) for g in gates.GATES if g.check[0] != "uv")
DIRECT = re.compile(rf"\buv (lock\b|run\b.*\b({TOOLS})\b)")
# pre-commit's config and the workflows are optional: where an owner deleted
# one, nothing in it can drift from the list, and its test has nothing to do.


def called(line: str) -> list[str]:
    """The arguments a shell line or hook entry gives scripts/gates.py."""
    words = shlex.split(line, comments=True)
    after = words[words.index("scripts/gates.py") + 1 :]
    return after[: after.index("|")] if "|" in after else after


def names(chosen: list[gates.Gate]) -> list[str]:
    return [gate.name for gate in chosen]


def test_pre_commit_runs_every_gate_but_the_tests_through_the_command() -> None:
    path = ROOT / ".pre-commit-config.yaml"
    if not path.is_file():
        return
    config = yaml.safe_load(path.read_text())
    hooks: list[dict[str, Any]] = [h for repo in config["repos"] for h in repo["hooks"]]
    ours = [h for h in hooks if "scripts/gates.py" in h["entry"]]
    assert len(ours) == 1, ours
    options = gates.parse(called(ours[0]["entry"]) + ours[0].get("args", []))
    assert options.fix
    assert names(gates.selected(options)) == [n for n in gates.NAMES if n != "pytest"]
    assert ours[0]["pass_filenames"] is False
    for hook in hooks:
        if hook is not ours[0]:
            assert not DIRECT.search(hook["entry"]), hook


def test_ci_runs_every_gate_and_the_slow_tests_through_the_command() -> None:
    path = ROOT / ".github/workflows/ci.yml"
    if not path.is_file():
        return
    workflow = yaml.safe_load(path.read_text())
    runs = [
        step["run"]
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "run" in step
    ]
    ours = [
        line for run in runs for line in run.splitlines() if "scripts/gates.py" in line
    ]
    assert len(ours) == 1, ours
    options = gates.parse(called(ours[0]))
    assert not options.fix
    assert names(gates.selected(options)) == gates.NAMES
    assert options.pytest_args[:2] == ["-m", ""]
    for run in runs:
        for line in run.splitlines():
            if line not in ours and not line.lstrip().startswith("#"):
                assert not DIRECT.search(line), line


def test_the_security_workflow_runs_its_offline_gates_through_the_command() -> None:
    path = ROOT / ".github/workflows/security.yml"
    if not path.is_file():
        return
    workflow = yaml.safe_load(path.read_text())
    lines = [
        line
        for job in workflow["jobs"].values()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
    ]
    ours = [line for line in lines if "scripts/gates.py" in line]
    assert len(ours) == 1, ours
    assert names(gates.selected(gates.parse(called(ours[0])))) == [
        "bandit",
        "detect-secrets",
    ]
    for line in lines:
        if line not in ours:
            assert not DIRECT.search(line), line


def test_only_and_skip_choose_gates_in_the_lists_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    only = gates.parse(["--only", "pytest", "--only", "black", "--", "-x"])
    assert names(gates.selected(only)) == ["black", "pytest"]
    assert gates.command(gates.GATES[-1], only) == ["pytest", "-x"]
    skip = gates.parse(["--skip", "pytest", "--skip", "mypy"])
    assert names(gates.selected(skip)) == [
        n for n in gates.NAMES if n not in {"pytest", "mypy"}
    ]
    with pytest.raises(SystemExit):
        gates.parse(["--only", "flake8"])
    with pytest.raises(SystemExit):
        gates.parse(["--skip", "pytest", "--", "-x"])
    assert "pytest does not run" in capsys.readouterr().err


def test_a_lint_error_fails_the_run_naming_its_gate(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "gates.py", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    source = tmp_path / "module.py"
    source.write_text('"""A module."""\n\nimport os\n\nprint(os.sep)\n')

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "scripts/gates.py", "--only", "ruff", "--only", "black"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    clean = run()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert re.findall(r"^== (\S+) ==", clean.stdout, re.M) == ["black", "ruff"]
    assert clean.stdout.splitlines()[-1].startswith("gates: all 2 passed")

    source.write_text('"""A module."""\n\nimport os\nimport sys\n\nprint(os.sep)\n')
    broken = run()
    assert broken.returncode == 1
    assert "F401" in broken.stdout
    assert broken.stdout.splitlines()[-1].startswith(
        "gates: FAILED ruff; passed black ("
    )
