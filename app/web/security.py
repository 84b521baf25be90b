"""Keeping control with the presenter: roles, tokens, origins, headers and connection limits."""

import hmac
import secrets
import time
from collections import Counter
from urllib.parse import urlsplit

from starlette.types import Message, Scope, Send

from app.web.asgi import HttpSendWrapper

TOKEN_HEADER = "x-backbeat-token"
# set from the presenter link so every tab of that browser presents; HttpOnly: no script reads it
PRESENTER_COOKIE = "backbeat_presenter"
PRESENTER_COOKIE_MAX_AGE = 12 * 3600  # s: one long teaching day
TOKEN_BYTES = 24  # 192 bits of randomness in a presenter token
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; media-src 'self' blob:; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# /docs and /redoc run vendored scripts from this server only; both inject their own styles
# (inline), and ReDoc builds its search worker from a blob: URL
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
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


def offered_token(headers, cookies: dict[str, str], query: str | None = None) -> str | None:
    """The token a request brings: the link's query, the header scripts send, or the cookie."""
    return query or headers.get(TOKEN_HEADER) or cookies.get(PRESENTER_COOKIE)


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


class SecurityHeaders(HttpSendWrapper):
    """Adds CSP, nosniff, framing and referrer headers to every HTTP response."""

    def wrap(self, scope: Scope, send: Send) -> Send:
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

        return send_with_headers
