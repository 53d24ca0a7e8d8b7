"""Values derived once from the answers, available to every template file."""

from __future__ import annotations

import datetime
from typing import Any

from copier_template_extensions import ContextHook


def derive(answers: dict[str, Any], today: datetime.date) -> dict[str, Any]:
    """Compute the derived names from the answers (pure, unit-tested).

    Unknown answers are Copier's to reject (it names the question and the
    choices), so nothing here may fail on them first.
    """
    major, _, minor = str(answers["python_version"]).partition(".")
    return {
        "python_tag": f"py{major}{minor}",
        "copyright_year": today.year,
    }


class ServiceContext(ContextHook):
    """Adds derived values (python_tag, copyright_year)."""

    def hook(self, context: dict[str, Any]) -> None:
        if "python_version" not in context:
            # Copier renders question defaults before every answer exists.
            return
        context.update(derive(context, datetime.date.today()))
