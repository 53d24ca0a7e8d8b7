"""Response models for publications."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, field_validator


class PublicationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item_id: int
    requested_at: datetime
    published_at: datetime | None
    publish_count: int

    @field_validator("requested_at", "published_at")
    @classmethod
    def _assume_utc(cls, value: datetime | None) -> datetime | None:
        # SQLite drops the zone; every timestamp is stored in UTC.
        if value is None or value.tzinfo:
            return value
        return value.replace(tzinfo=UTC)


class PublicationQueued(PublicationRead):
    message_id: str
