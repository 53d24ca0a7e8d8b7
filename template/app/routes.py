"""Moved in 0.13.0 to app/compat/fastapi_routes.py (it reads FastAPI's
private shape of included routers); importable from here, with a
DeprecationWarning, until 0.14.0."""

import warnings

from app.compat.fastapi_routes import RouteEntry, route_table

warnings.warn(
    "app.routes moved to app.compat.fastapi_routes",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["RouteEntry", "route_table"]
