"""Names 0.13.0 moved still work from where they were, with a
DeprecationWarning, until 0.14.0 removes them (CHANGELOG: "Deprecated")."""

from __future__ import annotations

import io

import pytest

from app import logging as app_logging
from app import telemetry
from app.middleware import sampling_gate
from app.settings import Settings
from tests.fixtures.settings import make_settings


@pytest.mark.parametrize(
    "name", ["LOW_64_BITS", "NeedsInstrumentation", "TRACEPARENT", "read_parent"]
)
def test_the_gates_names_still_import_from_telemetry(name: str) -> None:
    with pytest.warns(DeprecationWarning, match="app.middleware.sampling_gate"):
        moved = getattr(telemetry, name)

    assert moved is getattr(sampling_gate, name)


def test_a_name_telemetry_never_had_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        telemetry.no_such_name  # noqa: B018


def test_the_access_log_is_still_there_for_who_asks_the_old_way(
    settings: Settings,
) -> None:
    access = make_settings(settings.database.url, log={"level": "INFO"})

    configured = app_logging.configure_logging(access, io.StringIO())
    with pytest.warns(DeprecationWarning, match="configure_logging"):
        asked = app_logging.access_log()

    assert configured is not None
    assert asked is configured
