"""HTTP routes for publications."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from app.auth import CurrentUser, Reader
from app.db import SessionDep
from app.errors import problem_responses
from app.items.schemas import ItemId
from app.publications import service
from app.publications.schemas import PublicationQueued, PublicationRead
from app.publications.tasks import publish_item
from app.ratelimit import RateLimit
from app.worker.jobs import JobsDep

router = APIRouter(
    prefix="/items",
    tags=["publications"],
    responses=problem_responses(404, 429),
)


@router.post(
    "/{item_id}/publish",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PublicationQueued,
    dependencies=[Depends(RateLimit("write"))],
)
async def publish(
    item_id: ItemId, session: SessionDep, jobs: JobsDep, user: CurrentUser
) -> PublicationQueued:
    """Queue the publication of one of the caller's items (a background task)."""
    publication = await service.request_publication(session, item_id, user.id)
    message_id = await jobs.send(publish_item, item_id, publication.request_key)
    return PublicationQueued(
        **PublicationRead.model_validate(publication).model_dump(),
        message_id=message_id,
    )


@router.get("/{item_id}/publication", response_model=PublicationRead)
async def get_publication(
    item_id: ItemId, session: SessionDep, reader: Reader
) -> PublicationRead:
    """Read an item's publication state."""
    owner = reader.id if reader else None
    return PublicationRead.model_validate(
        await service.get_publication(session, item_id, owner)
    )
