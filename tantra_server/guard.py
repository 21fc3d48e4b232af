"""Before any route: the API key (compared in constant time), then the body's size, both refused in OpenAI's error JSON.

A refusal that comes before the client has sent its whole body is held open while the rest is read and dropped, as
nginx's lingering close does: clients (urllib, httpx) send the whole body before they read a byte, so a connection
closed under them reports "connection reset", never the 401 or 413 they were sent, and they try the upload again.
"""

from __future__ import annotations

import hmac

import anyio

from tantra_server.errors import ApiError, error_response

LINGER_SECONDS = 30.0
LINGER_BYTES = 1 << 30  # past this, or that long, the connection is closed under the client after all


class Guard:
    """ASGI middleware: refuses a request without the key or with a body over the limit, before any route runs."""

    def __init__(self, app, api_key: str, max_body_bytes: int) -> None:
        self.app, self.key, self.limit = app, api_key.encode(), max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
        body = RequestBody(receive, headers, self.limit)
        send = body.held_until_read(send)
        if self.key and scope["path"] != "/health" and not self._authorized(headers.get("authorization", b"")):
            refusal = error_response(401, "a valid API key is required (Authorization: Bearer KEY)",
                                     "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
            return await refusal(scope, receive, send)
        declared = headers.get("content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await error_response(413, body.too_large(int(declared)), "request_too_large")(scope, receive, send)
        await self.app(scope, body.receive, send)

    def _authorized(self, header: bytes) -> bool:
        scheme, _, given = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.key)


class RequestBody:
    """The request body as the route reads it, counted against the limit; and the rest read and dropped before a
    reply that came first ends."""

    def __init__(self, receive, headers: dict[str, bytes], limit: int) -> None:
        self._receive, self.limit, self.seen = receive, limit, 0
        chunked = b"chunked" in headers.get("transfer-encoding", b"").lower()
        self.received_all = headers.get("content-length", b"0") in (b"0", b"") and not chunked
        # A client that asked "Expect: 100-continue" sends nothing until told to: a refusal is all it waits for.
        self.waits_to_be_asked = headers.get("expect", b"").lower() == b"100-continue"

    async def receive(self):
        message = await self._next()
        if self.seen > self.limit:  # no Content-Length (chunked): counted as it comes
            raise ApiError(413, self.too_large(), "request_too_large")
        return message

    async def _next(self):
        message = await self._receive()
        self.waits_to_be_asked = False
        self.seen += len(message.get("body", b""))
        self.received_all = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    def too_large(self, size: int | None = None) -> str:
        said = f"the request body ({size / 1048576:.1f} MB)" if size else "the request body"
        return f"{said} is over this server's limit of {self.limit / 1048576:g} MB (tantra serve --max-body-mb)"

    def held_until_read(self, send):
        """``send``, except that the reply's last message waits until the client has sent its whole body."""

        async def send_after_the_body(message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                if not self.received_all and not self.waits_to_be_asked:
                    await send({**message, "more_body": True})
                    await self._drop_the_rest()
                    message = {"type": "http.response.body", "body": b""}
            await send(message)

        return send_after_the_body

    async def _drop_the_rest(self) -> None:
        read_before = self.seen
        with anyio.move_on_after(LINGER_SECONDS):
            while not self.received_all and self.seen - read_before < LINGER_BYTES:
                await self._next()
