"""Time in one zone: every timestamp the service stores or answers is UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def utcnow() -> datetime:
    """Now, in UTC (a timestamp column's `default_factory`)."""
    return datetime.now(UTC)


def assume_utc(value: datetime) -> datetime:
    """`value`, in UTC if it names no zone: SQLite drops the zone of what it
    stores, and every timestamp is stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# A timestamp read back from the database, for a response model.
UtcDateTime = Annotated[datetime, AfterValidator(assume_utc)]
