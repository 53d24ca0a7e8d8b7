"""HTTP routes for items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.db import SessionDep
from app.items import service
from app.items.schemas import MAX_PAGE_SIZE, ItemCreate, ItemPage, ItemRead, ItemUpdate

router = APIRouter(prefix="/items", tags=["items"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ItemRead)
async def create_item(
    body: ItemCreate, session: SessionDep, request: Request, response: Response
) -> ItemRead:
    """Create an item."""
    item = await service.create_item(session, body)
    response.headers["Location"] = request.url_for("get_item", item_id=item.id).path
    return ItemRead.model_validate(item)


@router.get("", response_model=ItemPage)
async def list_items(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ItemPage:
    """List items, oldest first, one page at a time."""
    items, total = await service.list_items(session, limit, offset)
    return ItemPage(
        items=[ItemRead.model_validate(item) for item in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{item_id}", response_model=ItemRead)
async def get_item(item_id: int, session: SessionDep) -> ItemRead:
    """Read one item."""
    return ItemRead.model_validate(await service.get_item(session, item_id))


@router.patch("/{item_id}", response_model=ItemRead)
async def update_item(item_id: int, body: ItemUpdate, session: SessionDep) -> ItemRead:
    """Change an item's name or description."""
    item = await service.update_item(session, item_id, body)
    return ItemRead.model_validate(item)


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(item_id: int, session: SessionDep) -> None:
    """Delete an item."""
    await service.delete_item(session, item_id)
