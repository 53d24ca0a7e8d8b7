"""Background tasks of publications."""

from __future__ import annotations

from loguru import logger

from app.clock import utcnow
from app.publications.models import ItemPublication
from app.worker import exactly_once, task


@task()
async def publish_item(item_id: int, request_key: str) -> None:
    """Publish an item, once per publication request."""
    async with exactly_once(f"publish-item:{request_key}") as session:
        if session is None:
            logger.info("item {item_id} already published", item_id=item_id)
            return
        publication = await session.get(ItemPublication, item_id)
        if publication is None:  # the item was deleted meanwhile
            return
        publication.published_at = utcnow()
        publication.publish_count += 1
        session.add(publication)
    logger.info("item {item_id} published", item_id=item_id)
