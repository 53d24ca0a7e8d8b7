"""v0.5.0's migration (migrations_copier/v0_5_0.py): a service made before
authentication keeps its API open (`auth: none`, `feature_flags: none`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.migration_fixtures import answers
from tests.support.migrations import MIGRATIONS, load, load_lib

LIB: Any = load_lib()
MIGRATED_ANSWERS = answers("migrated")


def test_a_service_made_before_authentication_keeps_its_api_open(
    tmp_path: Path,
) -> None:
    v0_5_0: Any = load(MIGRATIONS / "v0_5_0.py")
    path = tmp_path / ".copier-answers.yml"
    path.write_text(MIGRATED_ANSWERS + "broker: none\n")

    first = LIB.before(tmp_path, v0_5_0.CHANGES)
    once = path.read_text()
    second = LIB.before(tmp_path, v0_5_0.CHANGES)

    assert once == MIGRATED_ANSWERS + "broker: none\nauth: none\nfeature_flags: none\n"
    assert first == [
        "answered the new question auth: none",
        "answered the new question feature_flags: none",
    ]
    assert second == []
    # An owner who already chose keeps the choice.
    path.write_text(MIGRATED_ANSWERS + "auth: oidc\nfeature_flags: openfeature\n")
    assert LIB.before(tmp_path, v0_5_0.CHANGES) == []
