"""Item use cases. Raises domain errors; knows nothing about HTTP."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import Conflict, NotFound
from app.items.models import Item, utcnow
from app.items.schemas import ItemCreate, ItemUpdate


async def create_item(session: AsyncSession, data: ItemCreate) -> Item:
    item = Item.model_validate(data)
    session.add(item)
    await _commit(session, item.name)
    await session.refresh(item)
    return item


async def get_item(session: AsyncSession, item_id: int) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise NotFound(f"item {item_id} does not exist")
    return item


async def list_items(
    session: AsyncSession, limit: int, offset: int
) -> tuple[list[Item], int]:
    total = (await session.exec(select(func.count()).select_from(Item))).one()
    page = await session.exec(
        select(Item).order_by(col(Item.id)).limit(limit).offset(offset)
    )
    return list(page.all()), total


async def update_item(session: AsyncSession, item_id: int, data: ItemUpdate) -> Item:
    item = await get_item(session, item_id)
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(item, field, value)
    item.updated_at = utcnow()
    session.add(item)
    await _commit(session, item.name)
    await session.refresh(item)
    return item


async def delete_item(session: AsyncSession, item_id: int) -> None:
    item = await get_item(session, item_id)
    await session.delete(item)
    await session.commit()


async def _commit(session: AsyncSession, name: str) -> None:
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"an item named {name!r} already exists") from None
