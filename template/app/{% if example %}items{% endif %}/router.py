"""HTTP routes for items.

Writes need a token and touch only the caller's own items; reads need one
too unless AUTH_PUBLIC_READS is on. Writes are rate limited per caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.auth import CurrentUser, Reader
from app.db import SessionDep
from app.errors import problem_responses
from app.items import service
from app.items.schemas import (
    MAX_PAGE_SIZE,
    ItemCreate,
    ItemId,
    ItemPage,
    ItemRead,
    ItemUpdate,
)
from app.ratelimit import RateLimit

router = APIRouter(
    prefix="/items",
    tags=["items"],
    # The API router documents what every route can answer (app/api/v1.py).
    responses=problem_responses(429),
)
# Changes are counted per caller (RATELIMIT_WRITE).
write_limit = [Depends(RateLimit("write"))]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemRead,
    dependencies=write_limit,
    responses=problem_responses(409),
)
async def create_item(
    body: ItemCreate,
    session: SessionDep,
    user: CurrentUser,
    request: Request,
    response: Response,
) -> ItemRead:
    """Create an item, owned by the caller."""
    item = await service.create_item(session, body, owner=user.id)
    response.headers["Location"] = request.url_for("get_item", item_id=item.id).path
    return ItemRead.model_validate(item)


@router.get("", response_model=ItemPage)
async def list_items(
    session: SessionDep,
    reader: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ItemPage:
    """List the caller's items (everyone's with public reads), oldest first."""
    owner = reader.id if reader else None
    items, total = await service.list_items(session, limit, offset, owner)
    return ItemPage(
        items=[ItemRead.model_validate(item) for item in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{item_id}", response_model=ItemRead, responses=problem_responses(404))
async def get_item(item_id: ItemId, session: SessionDep, reader: Reader) -> ItemRead:
    """Read one item."""
    item = await service.get_item(session, item_id, reader.id if reader else None)
    return ItemRead.model_validate(item)


@router.patch(
    "/{item_id}",
    response_model=ItemRead,
    dependencies=write_limit,
    responses=problem_responses(404, 409),
)
async def update_item(
    item_id: ItemId, body: ItemUpdate, session: SessionDep, user: CurrentUser
) -> ItemRead:
    """Change the name or description of one of the caller's items."""
    item = await service.update_item(session, item_id, body, owner=user.id)
    return ItemRead.model_validate(item)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=write_limit,
    responses=problem_responses(404),
)
async def delete_item(item_id: ItemId, session: SessionDep, user: CurrentUser) -> None:
    """Delete one of the caller's items."""
    await service.delete_item(session, item_id, owner=user.id)
