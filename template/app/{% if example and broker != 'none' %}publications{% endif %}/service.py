"""Publication use cases."""

from __future__ import annotations

import secrets

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from app.clock import utcnow
from app.errors import NotFound
from app.items.service import get_item
from app.publications.models import ItemPublication


async def request_publication(
    session: AsyncSession, item_id: int, owner: str
) -> ItemPublication:
    """Record a publication request (committed before any task is sent)."""
    await get_item(session, item_id, owner)
    # One statement, so two first requests at once cannot both insert (the
    # second would fail on the primary key): the later one updates.
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
        ItemPublication
    ).values(item_id=item_id, request_key=secrets.token_hex(16), requested_at=utcnow())
    await session.exec(
        insert.on_conflict_do_update(
            index_elements=["item_id"],
            set_={
                "request_key": insert.excluded.request_key,
                "requested_at": insert.excluded.requested_at,
            },
        )
    )
    await session.commit()
    publication = await session.get(ItemPublication, item_id, populate_existing=True)
    if publication is None:  # the item was deleted meanwhile
        raise NotFound(f"item {item_id} does not exist")
    return publication


async def get_publication(
    session: AsyncSession, item_id: int, owner: str | None
) -> ItemPublication:
    await get_item(session, item_id, owner)
    publication = await session.get(ItemPublication, item_id)
    if publication is None:
        raise NotFound(f"item {item_id} has no publication")
    return publication
