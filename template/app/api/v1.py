"""Version 1 of the public API (`/api/v1`): include each domain's router here."""

from fastapi import APIRouter

from app.items.router import router as items_router

API_PREFIX = "/api/v1"

router = APIRouter(prefix=API_PREFIX)
router.include_router(items_router)
