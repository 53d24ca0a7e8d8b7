"""Renovate and GitHub workflow files, checked by real validators (no GitHub
here: these prove the files are well formed and safe, not that they run)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, run, tool_env

BIN = Path(sys.executable).parent
WORKFLOWS = [
    ROOT / ".github" / "workflows" / "ci.yml",
    ROOT / "template" / ".github" / "workflows" / "template-update.yml",
    ROOT / "template" / ".github" / "workflows" / "security.yml",
    ROOT / ".github" / "workflows" / "release.yml",
]


def test_renovate_config_matches_renovates_schema() -> None:
    config = ROOT / "template" / "renovate.json"

    checked = run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.renovate",
            str(config),
        ],
        ROOT,
        tool_env(),
    )

    assert checked.returncode == 0, checked.output
    managers = {
        m
        for rule in json.loads(config.read_text())["packageRules"]
        for m in rule.get("matchManagers", [])
    }
    assert "copier" in managers
    assert json.loads(config.read_text())["lockFileMaintenance"]["enabled"] is True


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(workflow: Path) -> None:
    run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(workflow),
        ],
        ROOT,
        tool_env(),
    ).check()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_has_no_zizmor_findings(workflow: Path) -> None:
    run([str(BIN / "zizmor"), "--offline", str(workflow)], ROOT, tool_env()).check()


def test_the_update_workflow_runs_the_renovate_command() -> None:
    text = WORKFLOWS[1].read_text()
    workflow: dict[Any, Any] = yaml.safe_load(text)

    assert "schedule" in workflow[True]  # YAML 1.1 reads the `on` key as True
    assert "copier update --skip-answered --defaults --trust" in " ".join(text.split())
    assert "--answers-file .copier-answers.yml" in text
    assert "check-update" in text


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_and_reusable_workflow_is_pinned_or_local(workflow: Path) -> None:
    """A reusable workflow of the same repository is named with GitHub's
    self-repository form (`$/.github/workflows/...`, what zizmor's
    self-repository audit asks for); anything else is pinned by commit."""
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    uses = [job["uses"] for job in jobs.values() if "uses" in job]
    uses += [
        step["uses"]
        for job in jobs.values()
        for step in job.get("steps", [])
        if "uses" in step
    ]

    for target in uses:
        local = target.startswith("$/.github/workflows/")
        assert local or re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", target), target
