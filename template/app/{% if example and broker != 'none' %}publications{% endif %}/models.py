"""The publication state of an item."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

from app.clock import utcnow


class ItemPublication(SQLModel, table=True):
    __tablename__ = "item_publications"

    item_id: int = Field(foreign_key="items.id", ondelete="CASCADE", primary_key=True)
    request_key: str = Field(max_length=64)
    requested_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False
    )
    published_at: datetime | None = Field(
        default=None, sa_type=DateTime(timezone=True), nullable=True
    )
    publish_count: int = Field(default=0, nullable=False)
