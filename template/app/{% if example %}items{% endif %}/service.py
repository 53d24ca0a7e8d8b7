"""Item use cases. Raises domain errors; knows nothing about HTTP.

`owner` scopes every lookup to one user's items; another user's item is
reported as missing (404), never as forbidden, so ids do not reveal what
exists. `owner=None` reads everyone's items (public reads only).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.clock import utcnow
from app.errors import Conflict, NotFound
from app.items.models import Item
from app.items.schemas import ItemCreate, ItemUpdate


async def create_item(session: AsyncSession, data: ItemCreate, owner: str) -> Item:
    item = Item.model_validate(data, update={"owner_id": owner})
    session.add(item)
    await _commit(session, item.name)
    await session.refresh(item)
    return item


async def get_item(session: AsyncSession, item_id: int, owner: str | None) -> Item:
    item = await session.get(Item, item_id)
    if item is None or (owner is not None and item.owner_id != owner):
        raise NotFound(f"item {item_id} does not exist")
    return item


async def list_items(
    session: AsyncSession, limit: int, offset: int, owner: str | None
) -> tuple[list[Item], int]:
    mine: list[Any] = [] if owner is None else [col(Item.owner_id) == owner]
    total = (
        await session.exec(select(func.count()).select_from(Item).where(*mine))
    ).one()
    page = await session.exec(
        select(Item).where(*mine).order_by(col(Item.id)).limit(limit).offset(offset)
    )
    return list(page.all()), total


async def update_item(
    session: AsyncSession, item_id: int, data: ItemUpdate, owner: str
) -> Item:
    item = await get_item(session, item_id, owner)
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(item, field, value)
    item.updated_at = utcnow()
    session.add(item)
    await _commit(session, item.name)
    await session.refresh(item)
    return item


async def delete_item(session: AsyncSession, item_id: int, owner: str) -> None:
    item = await get_item(session, item_id, owner)
    await session.delete(item)
    await session.commit()


async def _commit(session: AsyncSession, name: str) -> None:
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"you already have an item named {name!r}") from None
