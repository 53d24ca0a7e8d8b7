"""The interactive API documentation (/docs), served by the service itself.

FastAPI's own /docs page loads Swagger UI's script and style from a CDN:
where the browser cannot reach it (a locked-down network, a laptop offline)
the page is blank. fastapi-swagger packages the latest Swagger UI release
(a new version of it follows each Swagger UI release; Renovate proposes
them); its files are served here under /docs/static, and the page itself is
FastAPI's (`get_swagger_ui_html`), pointed at them. The same routes as
FastAPI's: /docs and /docs/oauth2-redirect, off in production unless
DOCS_IN_PRODUCTION.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS = "/docs"
ASSETS = f"{DOCS}/static"
# Where fastapi-swagger keeps Swagger UI's files.
ASSETS_PACKAGE = ("fastapi_swagger", "resources")


def add_docs(app: FastAPI) -> None:
    """/docs with Swagger UI's files from this service, not a CDN."""
    redirect = f"{DOCS}/oauth2-redirect"
    app.mount(ASSETS, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=f"{root}{redirect}",
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
