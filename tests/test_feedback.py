"""The feedback loop: issue forms and pull-request templates, for the
template's repository and for every service, valid as GitHub reads them, and
asking for what a bug needs to be reproduced."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, run, tool_env

BIN = Path(sys.executable).parent
FORMS = {
    "template": ROOT / ".github" / "ISSUE_TEMPLATE",
    "service": ROOT / "template" / ".github" / "ISSUE_TEMPLATE",
}


@pytest.mark.parametrize("owner", sorted(FORMS))
def test_the_issue_forms_are_valid_github_issue_forms(owner: str) -> None:
    folder = FORMS[owner]
    forms = sorted(p for p in folder.glob("*.yml") if p.name != "config.yml")
    assert forms, folder

    for schema, files in (
        ("vendor.github-issue-forms", forms),
        ("vendor.github-issue-config", [folder / "config.yml"]),
    ):
        run(
            [str(BIN / "check-jsonschema"), "--builtin-schema", schema,
             *map(str, files)],
            ROOT,
            tool_env(),
        ).check()  # fmt: skip
    assert (folder.parent / "pull_request_template.md").is_file()


def required_labels(form: Path) -> list[str]:
    body = yaml.safe_load(form.read_text())["body"]
    return [
        item["attributes"]["label"]
        for item in body
        if item.get("validations", {}).get("required")
    ]


def test_a_bug_report_asks_for_the_release_and_the_answers() -> None:
    template = FORMS["template"] / "bug_report.yml"
    service = FORMS["service"] / "bug_report.yml"

    assert required_labels(template)[:2] == ["Template release", "Answers"]
    assert ".copier-answers.yml" in template.read_text()
    assert required_labels(service)[0] == "Service version and template release"
    assert "/health" in service.read_text()
