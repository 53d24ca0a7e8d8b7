"""Response models for publications."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from app.clock import UtcDateTime


class PublicationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item_id: int
    requested_at: UtcDateTime
    published_at: UtcDateTime | None
    publish_count: int


class PublicationQueued(PublicationRead):
    message_id: str
