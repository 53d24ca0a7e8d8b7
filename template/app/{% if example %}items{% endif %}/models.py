"""The items table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index
from sqlmodel import Field, SQLModel

from app.clock import utcnow

# Owner of the items made while nobody authenticated (AUTH_MODE=none).
ANONYMOUS_OWNER = "anonymous"


class Item(SQLModel, table=True):
    __tablename__ = "items"
    # Names are unique per owner: a conflict must not reveal others' items.
    __table_args__ = (Index("uq_items_owner_name", "owner_id", "name", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(
        max_length=200, sa_column_kwargs={"server_default": ANONYMOUS_OWNER}
    )
    name: str = Field(max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False
    )
