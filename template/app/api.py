"""Version 1 of the public API. A breaking change gets a new `/api/v2` router."""

from fastapi import APIRouter

from app.items.router import router as items_router

API_PREFIX = "/api/v1"

router = APIRouter(prefix=API_PREFIX)
router.include_router(items_router)
