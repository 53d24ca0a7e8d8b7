"""The edge of every request: allowed hosts, body size, security headers.

Pure ASGI, one pass: it reads the headers once, wraps `receive` only when a
body can come, and adds the response headers in one `send` wrapper.
- A Host not in ALLOWED_HOSTS answers 400 (`*.example.com` allows
  subdomains; empty allows any, which staging and production refuse).
  Probes and /metrics are exempt: kubelet and Prometheus call them by pod
  IP. Two Host headers answer 400 everywhere.
- A body larger than HTTP_MAX_BODY_SIZE answers 413: at once when
  Content-Length says so, otherwise as soon as the streamed body passes it.
- Every response carries nosniff, frame denial, a referrer policy, and HSTS
  when HTTP_HSTS is on; a header the route set itself is left alone.
"""

from __future__ import annotations

from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem
from app.probes import UNTRACED_PATHS
from app.settings import Settings


class BodyTooLarge(HTTPException):
    """Raised from `receive`; FastAPI and the error handlers render it as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the request body is larger than {limit} bytes",
        )


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.http.max_body_size
        hosts = [h.lower() for h in settings.allowed_hosts]
        self.any_host = not hosts or "*" in hosts
        self.hosts = frozenset(h for h in hosts if not h.startswith("*."))
        self.domains = tuple(h[1:] for h in hosts if h.startswith("*."))
        headers = {
            b"x-content-type-options": b"nosniff",
            b"x-frame-options": b"DENY",
            b"content-security-policy": b"frame-ancestors 'none'",
            b"referrer-policy": b"no-referrer",
        }
        if settings.http.hsts:
            headers[b"strict-transport-security"] = (
                f"max-age={settings.http.hsts_max_age}; includeSubDomains".encode()
            )
        self.headers = list(headers.items())
        self.header_names = frozenset(headers)

    def host_allowed(self, host: str) -> bool:
        if host.startswith("["):  # [::1]:8000
            host = host[: host.find("]") + 1]
        else:
            host = host.rsplit(":", 1)[0]
        host = host.lower()
        return host in self.hosts or host.endswith(self.domains)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        host = ""
        hosts = 0
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                hosts += 1
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *(h for h in self.headers if h[0] not in present),
                ]
            await send(message)

        refusal = None
        if hosts > 1:
            # RFC 9112 3.2: a request with more than one Host is refused (the
            # check would see one, URLs would be built from the other).
            refusal = problem(
                HTTPStatus.BAD_REQUEST,
                "a request has one Host header",
                request_id=scope.get("state", {}).get("request_id"),
                instance=scope["path"],
            )
        elif not (
            self.any_host or scope["path"] in UNTRACED_PATHS or self.host_allowed(host)
        ):
            refusal = problem(
                HTTPStatus.BAD_REQUEST,
                "this host is not served",
                request_id=scope.get("state", {}).get("request_id"),
                instance=scope["path"],
            )
        if refusal is None and length is not None and length > self.max_body:
            refusal = problem(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request body is larger than {self.max_body} bytes",
                request_id=scope.get("state", {}).get("request_id"),
                instance=scope["path"],
            )
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return

        received = 0
        limit = self.max_body

        async def receive_bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_bounded, send_with_headers)
