"""HTTP routes for publications."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.db import SessionDep
from app.publications import service
from app.publications.schemas import PublicationQueued, PublicationRead
from app.publications.tasks import publish_item
from app.worker.jobs import JobsDep

router = APIRouter(prefix="/items", tags=["publications"])


@router.post(
    "/{item_id}/publish",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PublicationQueued,
)
async def publish(
    item_id: int, session: SessionDep, jobs: JobsDep
) -> PublicationQueued:
    """Queue the publication of an item (done by a background task)."""
    publication = await service.request_publication(session, item_id)
    message_id = await jobs.send(publish_item, item_id, publication.request_key)
    return PublicationQueued(
        **PublicationRead.model_validate(publication).model_dump(),
        message_id=message_id,
    )


@router.get("/{item_id}/publication", response_model=PublicationRead)
async def get_publication(item_id: int, session: SessionDep) -> PublicationRead:
    """Read an item's publication state."""
    return PublicationRead.model_validate(
        await service.get_publication(session, item_id)
    )
