"""Command line: `python -m app serve` runs the API, `python -m app migrate`
applies database migrations, `python -m app token USER` mints a bearer token
for local use (AUTH_MODE=jwt, never in production)."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from app import migrations
from app.logging import configure_logging
from app.settings import load_settings


def share_metrics_between_processes() -> None:
    """Point prometheus-client at an empty folder, before anything imports it.

    Each server process writes its metrics there; a scrape adds them up.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or ""
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        # Files left by an earlier run would be counted again.
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        folder = tempfile.mkdtemp(prefix="prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def serve(reload: bool) -> None:
    settings = load_settings()
    configure_logging(settings)
    if reload or settings.server.workers > 1:
        share_metrics_between_processes()
    if settings.metrics.enabled and settings.metrics.port is not None:
        from app.metrics import start_metrics_server

        start_metrics_server(
            settings.server.host, settings.metrics.port, settings.metrics.token
        )
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=None if reload else settings.server.workers,
        reload=reload,
        log_config=None,
        # app.middleware.observability writes the access lines.
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.server.trusted_proxies,
        timeout_graceful_shutdown=settings.server.graceful_shutdown_timeout,
        server_header=False,
        # uvicorn's httptools protocol with the request head bounded
        # (SERVER_MAX_HEADER_BYTES, SERVER_HEADER_TIMEOUT).
        http="app.server:BoundedHttpToolsProtocol",
    )


def migrate(revision: str) -> None:
    settings = load_settings()
    configure_logging(settings)
    migrations.upgrade(settings.database.url, revision)


def token(subject: str, minutes: int) -> None:
    from app.auth import Authenticator

    settings = load_settings()
    if settings.is_production:
        raise SystemExit("token: minting tokens is for development, not production")
    if settings.auth.mode != "jwt":
        raise SystemExit(
            f"token: AUTH_MODE is {settings.auth.mode}; tokens are minted in"
            " AUTH_MODE=jwt (run with AUTH_MODE=jwt locally)"
        )
    try:
        print(Authenticator(settings).mint(subject, minutes))
    except ValueError as error:
        raise SystemExit(f"token: {error}") from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the API server")
    serve_parser.add_argument(
        "--reload", action="store_true", help="restart on code changes (dev)"
    )
    migrate_parser = commands.add_parser("migrate", help="apply migrations")
    migrate_parser.add_argument("revision", nargs="?", default="heads")
    token_parser = commands.add_parser(
        "token", help="print a bearer token for local use (AUTH_MODE=jwt)"
    )
    token_parser.add_argument("subject", help="the user id (the token's sub)")
    token_parser.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.reload)
    elif args.command == "token":
        token(args.subject, args.minutes)
    else:
        migrate(args.revision)


if __name__ == "__main__":
    main()
