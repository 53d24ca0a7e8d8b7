"""The application factory and its lifespan."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from loguru import logger
from starlette.middleware.cors import CORSMiddleware

from app import db, migrations
from app.api import v1
from app.errors import register_exception_handlers
from app.health import Check
from app.health import router as health_router
from app.logging import configure_logging
from app.middleware.request_id import RequestIdMiddleware
from app.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; `settings=None` reads them from the environment."""
    settings = settings or load_settings()
    configure_logging(settings)
    for old, new in settings.deprecations:
        logger.warning("{old} is deprecated: rename it to {new}", old=old, new=new)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = db.create_engine(settings.database, settings.service.name)
        if settings.database.should_migrate_on_start:
            await asyncio.to_thread(migrations.upgrade, settings.database.url)
        logger.info(
            "started {service} {version} ({template})",
            service=settings.service.name,
            version=settings.service.version,
            template=settings.service.template,
        )
        try:
            yield {
                "settings": settings,
                "sessionmaker": db.create_sessionmaker(engine),
                "checks": [Check("database", lambda: db.ping(engine))],
                "started_at": time.monotonic(),
            }
        finally:
            await engine.dispose()
            logger.info("stopped")

    show_docs = not settings.is_production or settings.docs_in_production
    app = FastAPI(
        title=settings.service.title,
        description=settings.service.description,
        version=settings.service.version,
        debug=settings.debug,
        lifespan=lifespan,
        docs_url="/docs" if show_docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if show_docs else None,
    )
    register_exception_handlers(app)
    app.include_router(health_router)
    app.include_router(v1.router)

    if settings.cors.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors.origins,
            allow_credentials=settings.cors.allow_credentials,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Location"],
        )
    # Added last, so it runs first: every response, even CORS', carries the id.
    app.add_middleware(RequestIdMiddleware)
    return app
