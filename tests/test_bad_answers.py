"""A bad answer stops `copier copy` with a message naming the question and
the rule, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT, run, tool_env


@pytest.mark.parametrize(
    ("question", "value", "message"),
    [
        ("project_name", "   ", "'project_name': must not be empty"),
        (
            "project_slug",
            "Bad Slug",
            "'project_slug': \"Bad Slug\" must match ^[a-z][a-z0-9-]*$",
        ),
        ("project_slug", "payments", None),
        ("project_slug", "9lives", "'project_slug': \"9lives\" must match"),
        (
            "author_email",
            "not-an-email",
            "'author_email': \"not-an-email\" is not a valid e-mail",
        ),
        (
            "python_version",
            "3.9",
            "'python_version': '3.9' is not in ['3.11', '3.12', '3.13']",
        ),
        (
            "production_database",
            "mysql",
            "'production_database': 'mysql' is not in ['postgresql', 'sqlite']",
        ),
        (
            "license",
            "GPL",
            "'license': 'GPL' is not in ['MIT', 'Apache-2.0', 'LicenseRef-Proprietary']",
        ),
    ],
)
def test_bad_answer_is_rejected_with_its_rule(
    tmp_path: Path, question: str, value: str, message: str | None
) -> None:
    destination = tmp_path / "service"

    result = run(
        [
            "copier", "copy", "--trust", "--defaults", "--skip-tasks",
            "--vcs-ref", "HEAD", "--data", f"{question}={value}",
            str(ROOT), str(destination),
        ],
        tmp_path,
        tool_env(),
    )  # fmt: skip

    if message is None:  # the control case: a good answer is accepted
        result.check()
        return
    assert result.returncode != 0, result.output
    assert message in result.output
    assert not destination.exists() or not any(destination.iterdir())
