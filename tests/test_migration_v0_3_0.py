"""v0.3.0's migration (migrations_copier/v0_3_0.py): a service made before the
worker existed is answered `broker: none`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.migration_fixtures import answers
from tests.support.migrations import MIGRATIONS, load, load_lib

LIB: Any = load_lib()
MIGRATED_ANSWERS = answers("migrated")


def test_a_service_made_before_the_worker_is_answered_broker_none(
    tmp_path: Path,
) -> None:
    v0_3_0: Any = load(MIGRATIONS / "v0_3_0.py")
    path = tmp_path / ".copier-answers.yml"
    path.write_text(MIGRATED_ANSWERS)

    first = LIB.before(tmp_path, v0_3_0.CHANGES)
    once = path.read_text()
    second = LIB.before(tmp_path, v0_3_0.CHANGES)

    assert once == MIGRATED_ANSWERS + "broker: none\n"
    assert first == ["answered the new question broker: none"]
    assert second == []
    assert path.read_text() == once
    path.write_text(MIGRATED_ANSWERS + "broker: redis\n")
    assert LIB.before(tmp_path, v0_3_0.CHANGES) == []
