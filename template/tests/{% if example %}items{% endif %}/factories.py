"""Items for the example's tests."""

from __future__ import annotations

import itertools
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.items.models import Item
from tests.fixtures.identity import default_user

_sequence = itertools.count(1)


def item_payload(**overrides: Any) -> dict[str, Any]:
    """A valid body for POST /api/v1/items."""
    number = next(_sequence)
    payload: dict[str, Any] = {
        "name": f"item-{number}",
        "description": f"test item {number}",
    }
    payload.update(overrides)
    return payload


async def create_item(
    session: AsyncSession, owner: str | None = None, **overrides: Any
) -> Item:
    """Insert an item directly, bypassing the API (owned by the `client` user)."""
    item = Item(owner_id=owner or default_user(), **item_payload(**overrides))
    session.add(item)
    await session.flush()
    await session.refresh(item)
    return item
