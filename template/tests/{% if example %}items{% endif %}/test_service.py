"""Item use cases without HTTP."""

from __future__ import annotations

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from app.errors import Conflict, NotFound
from app.items import service
from app.items.schemas import ItemCreate, ItemUpdate
from tests.fixtures.identity import ALICE, BOB
from tests.items.factories import create_item

pytestmark = pytest.mark.anyio


async def test_create_then_get(session: AsyncSession) -> None:
    item = await service.create_item(
        session, ItemCreate(name="a", description="b"), owner=ALICE
    )

    assert item.id is not None
    assert item.owner_id == ALICE
    assert (await service.get_item(session, item.id, ALICE)).name == "a"


async def test_get_unknown_raises_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFound, match="item 123456 does not exist"):
        await service.get_item(session, 123456, ALICE)


async def test_rename_to_an_existing_name_raises_conflict(
    session: AsyncSession,
) -> None:
    await create_item(session, owner=ALICE, name="taken")
    other = await create_item(session, owner=ALICE, name="free")
    assert other.id is not None

    with pytest.raises(Conflict):
        await service.update_item(
            session, other.id, ItemUpdate(name="taken"), owner=ALICE
        )


async def test_list_counts_all_items(session: AsyncSession) -> None:
    for _ in range(3):
        await create_item(session, owner=ALICE)

    page, total = await service.list_items(session, limit=1, offset=0, owner=ALICE)

    assert (len(page), total) == (1, 3)


async def test_each_test_starts_with_an_empty_table(session: AsyncSession) -> None:
    _, total = await service.list_items(session, limit=1, offset=0, owner=None)

    assert total == 0


async def test_another_owners_item_does_not_exist(session: AsyncSession) -> None:
    item = await create_item(session, owner=BOB, name="bobs")
    assert item.id is not None

    with pytest.raises(NotFound):
        await service.get_item(session, item.id, ALICE)
    with pytest.raises(NotFound):
        await service.update_item(session, item.id, ItemUpdate(name="x"), ALICE)
    with pytest.raises(NotFound):
        await service.delete_item(session, item.id, ALICE)
    assert (await service.get_item(session, item.id, None)).owner_id == BOB


async def test_names_are_unique_per_owner(session: AsyncSession) -> None:
    await service.create_item(session, ItemCreate(name="same"), owner=ALICE)

    theirs = await service.create_item(session, ItemCreate(name="same"), owner=BOB)

    assert theirs.owner_id == BOB
    _, mine = await service.list_items(session, limit=10, offset=0, owner=ALICE)
    assert mine == 1
