"""The one prologue of middleware that rewrites HTTP answers: websockets and lifespan pass by."""

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpSendWrapper:
    """ASGI middleware giving the app a wrapped `send` on HTTP requests, the plain one else.

    A subclass says how in `wrap(scope, send)`, which returns the `send` the app gets.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = self.wrap(scope, send)
        await self.app(scope, receive, send)

    def wrap(self, scope: Scope, send: Send) -> Send:
        raise NotImplementedError
