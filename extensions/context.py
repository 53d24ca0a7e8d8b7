"""Values derived once from the answers, available to every template file."""

from __future__ import annotations

import datetime
from typing import Any

from copier_template_extensions import ContextHook

LICENSE_CLASSIFIERS = {
    "MIT": "License :: OSI Approved :: MIT License",
    "Apache-2.0": "License :: OSI Approved :: Apache Software License",
    "proprietary": "License :: Other/Proprietary License",
}


def derive(answers: dict[str, Any], today: datetime.date) -> dict[str, Any]:
    """Compute the derived names from the answers (pure, unit-tested)."""
    major, _, minor = str(answers["python_version"]).partition(".")
    return {
        "python_tag": f"py{major}{minor}",
        # Unknown values are Copier's to reject (it names the question and the
        # choices); the hook must not fail first with a bare KeyError.
        "license_classifier": LICENSE_CLASSIFIERS.get(str(answers["license"]), ""),
        "copyright_year": today.year,
    }


class ServiceContext(ContextHook):
    """Adds derived values (python_tag, license_classifier, copyright_year)."""

    def hook(self, context: dict[str, Any]) -> None:
        if "python_version" not in context or "license" not in context:
            # Copier renders question defaults before every answer exists.
            return
        context.update(derive(context, datetime.date.today()))
