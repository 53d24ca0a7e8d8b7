"""Publication use cases."""

from __future__ import annotations

import secrets

from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import NotFound
from app.items.service import get_item
from app.publications.models import ItemPublication, utcnow


async def request_publication(
    session: AsyncSession, item_id: int, owner: str
) -> ItemPublication:
    """Record a publication request (committed before any task is sent)."""
    await get_item(session, item_id, owner)
    publication = await session.get(ItemPublication, item_id)
    if publication is None:
        publication = ItemPublication(item_id=item_id, request_key="")
    publication.request_key = secrets.token_hex(16)
    publication.requested_at = utcnow()
    session.add(publication)
    await session.commit()
    await session.refresh(publication)
    return publication


async def get_publication(
    session: AsyncSession, item_id: int, owner: str | None
) -> ItemPublication:
    await get_item(session, item_id, owner)
    publication = await session.get(ItemPublication, item_id)
    if publication is None:
        raise NotFound(f"item {item_id} has no publication")
    return publication
