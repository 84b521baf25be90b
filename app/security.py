"""Keeping control with the presenter: roles, tokens, origins, headers and connection limits."""

import hmac
import secrets
import time
from collections import Counter
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_HEADER = "x-backbeat-token"
TOKEN_BYTES = 24  # 192 bits of randomness in a presenter token
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; media-src 'self' blob:; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# the interactive API docs load Swagger UI's own script and styles
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class Access:
    """Who may control runs: everyone on a private bind, only token holders when shared."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    @property
    def shared(self) -> bool:
        return self.token is not None

    def is_presenter(self, offered: str | None) -> bool:
        if self.token is None:
            return True
        return offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())

    def role(self, offered: str | None) -> str:
        return "presenter" if self.is_presenter(offered) else "viewer"


def origin_allowed(origin: str | None, host: str | None, extra: tuple[str, ...] = ()) -> bool:
    """Same-origin (or allow-listed) websocket handshakes only; non-browser clients send none."""
    if origin is None:
        return True
    if origin in extra:
        return True
    return host is not None and urlsplit(origin).netloc == host


class ConnectionLimits:
    """Caps on open websockets, in total and per client address."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total, self.per_address = total, per_address
        self.open: Counter[str] = Counter()

    def refuse_reason(self, address: str) -> str | None:
        if sum(self.open.values()) >= self.total:
            return f"server full: {self.total} connections open"
        if self.open[address] >= self.per_address:
            return f"too many connections from your address (limit {self.per_address})"
        return None

    def acquire(self, address: str) -> None:
        self.open[address] += 1

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class RateLimit:
    """Token bucket: `rate` messages a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class SecurityHeaders:
    """Adds CSP, nosniff, framing and referrer headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if scope["path"].startswith(DOCS_PATHS) else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
