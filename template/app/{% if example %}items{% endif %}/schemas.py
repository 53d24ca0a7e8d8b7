"""Request and response models for items."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from app.clock import UtcDateTime

MAX_PAGE_SIZE = 100


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["Widget"])
    description: str | None = Field(default=None, max_length=1000)


class ItemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Omit a field to keep it; `name` cannot be cleared, `description` can.
    name: Annotated[str, Field(min_length=1, max_length=100)] | SkipJsonSchema[None] = (
        None
    )
    description: str | None = Field(default=None, max_length=1000)

    @field_validator("name")
    @classmethod
    def _name_is_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null")
        return value


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class ItemPage(BaseModel):
    items: list[ItemRead]
    total: int
    limit: int
    offset: int


# Ids are 32-bit integers in the database: larger ones cannot exist.
ItemId = Annotated[int, Path(ge=1, le=2_147_483_647)]
