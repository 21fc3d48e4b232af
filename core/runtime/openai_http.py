"""One client for every OpenAI-compatible server a role can use: vLLM, llama.cpp's server, Ollama, faster-whisper
servers, another ``tantra serve``.

Only the standard library: an optional backend needs no SDK, and a CLI that talks to a warm server starts in a
blink. Every request carries the key as a bearer token and nowhere else (not in errors, not in logs, not in the
URL shown). Overloaded or restarting servers (429, 5xx, refused connections) get two more tries with backoff, as
``Retry-After`` asks when it asks for little; what still fails raises ``ModelUnavailable``, so the local chain
answers instead. A server that refuses the request itself (400, 413, 422) raises ``BadInput``: another backend
would not do better with it.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from config.errors import BadInput, ModelUnavailable, TantraError

RETRIES = 2  # after the first try: a server that restarts or is briefly overloaded gets two more chances
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
LONGEST_WAIT = 8.0  # seconds: a Retry-After beyond this is not waited for, the local chain answers sooner
REFUSED_INPUT = frozenset({400, 413, 415, 422})


def shown_url(url: str) -> str:
    """``url`` without any user:password part, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible API, up to and including ``/v1`` (``http://gpu-box:8000/v1``), as one role uses it."""

    base_url: str
    api_key: str = field(default="", repr=False)
    """Sent as a bearer token; kept out of repr, errors and logs."""
    timeout: float = 60.0
    """Seconds to wait for a connection, and then for each next piece of the answer."""
    what: str = "server"
    """How messages name it: "the language model server"."""
    retries: int = RETRIES
    relays_refusals: bool = False
    """Refused input is said in the server's own words alone: a ``tantra serve`` writes them for the same person."""

    def __post_init__(self) -> None:
        scheme = urllib.parse.urlsplit(self.base_url).scheme
        if scheme not in ("http", "https"):
            raise TantraError(f"{self.what} URL {shown_url(self.base_url)!r} must start with http:// or https://")

    @property
    def label(self) -> str:
        return f"{self.what} at {shown_url(self.base_url)}"

    # ---- requests -------------------------------------------------------------------------------------------------

    def get_json(self, path: str) -> dict:
        with self.open("GET", path) as response:
            return self._json(self.read(response))

    def post_json(self, path: str, body: dict) -> dict:
        with self.open("POST", path, json.dumps(body).encode(), "application/json") as response:
            return self._json(self.read(response))

    def read(self, response, size: int = -1) -> bytes:
        """The body of an open response (``size`` bytes of it, fewer at its end); a server that stops sending it
        raises ``ModelUnavailable``."""
        try:
            return response.read(size)
        except (OSError, http.client.HTTPException) as error:
            raise self._stopped(error) from None

    def post_form(self, path: str, fields: dict[str, str | list[str]], files: dict[str, tuple[str, bytes, str]]):
        """A multipart/form-data POST (``files``: name -> (filename, bytes, content type)); the open response."""
        boundary = uuid.uuid4().hex
        body = bytearray()
        for name, values in fields.items():
            for value in values if isinstance(values, list) else [values]:
                body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, (filename, data, kind) in files.items():
            body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {kind}\r\n\r\n").encode() + data + b"\r\n"  # fmt: skip
        body += f"--{boundary}--\r\n".encode()
        return self.open("POST", path, bytes(body), f"multipart/form-data; boundary={boundary}")

    def events(self, path: str, body: dict) -> Iterator[dict]:
        """The JSON events of a server-sent event stream (``"stream": true``), until ``[DONE]`` or its end. A server
        that answers whole JSON instead (one that does not stream) gives that as the one event. Stopping early
        (closing this generator) closes the connection: the server stops generating."""
        with self.open("POST", path, json.dumps(body).encode(), "application/json") as response:
            if response.headers.get_content_type() == "application/json":
                yield self._event(self.read(response))
                return
            events = 0
            for raw in self._lines(response):
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data:"):
                    continue  # comments, event names, keep-alives
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                events += 1
                yield self._event(data.encode())
            if not events:  # otherwise an answer that is no event stream at all would read as an empty reply
                raise TantraError(f"the {self.label} answered something that is not an event stream")

    def _event(self, raw: bytes):
        event = self._json(raw)
        if isinstance(event, dict) and "error" in event:
            raise TantraError(f"the {self.label} failed mid-answer ({_message(event)})")
        return event

    def _lines(self, response) -> Iterator[bytes]:
        try:
            yield from response
        except (OSError, http.client.HTTPException) as error:  # a timeout, a reset, a chunk cut short
            raise self._stopped(error) from None

    def _stopped(self, error: BaseException) -> ModelUnavailable:
        reason = f"no more answer within {self.timeout:g} s" if isinstance(error, TimeoutError) else str(error)
        return ModelUnavailable(f"the {self.label} stopped answering ({reason or type(error).__name__})")

    def open(self, method: str, path: str, data: bytes | None = None, content_type: str | None = None):
        """The response once its status is 2xx, retrying what may pass; raises what a person can act on."""
        url = self.base_url.rstrip("/") + path
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            request = urllib.request.Request(url, data, headers, method=method)
            try:
                return urllib.request.urlopen(request, timeout=self.timeout)
            except urllib.error.HTTPError as error:
                detail = _detail(error)
                wait = _retry_after(error, attempt)
                if error.code in RETRY_STATUS and not last and wait <= LONGEST_WAIT:
                    time.sleep(wait)
                    continue
                raise self._refusal(error.code, detail) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                # OSError: timeouts and resets; HTTPException: something that is not HTTP answered (a wrong port)
                reason = getattr(error, "reason", error)
                timed_out = isinstance(reason, TimeoutError) or isinstance(error, TimeoutError)
                # A server that timed out may still be working on the request: sending it again would only add
                # work (an hour of audio transcribed three times); refused or reset connections are tried again.
                if not last and not timed_out:
                    time.sleep(0.5 * 2**attempt)
                    continue
                if timed_out:
                    reason = f"no answer within {self.timeout:g} s"
                elif isinstance(error, http.client.HTTPException):
                    reason = f"what answers is not an HTTP server: {type(error).__name__}"
                raise ModelUnavailable(f"the {self.label} cannot be reached ({reason})") from None
        raise AssertionError("unreachable")

    def _refusal(self, code: int, detail: str) -> TantraError:
        said = f"the {self.label} answered {code}" + (f" ({detail})" if detail else "")
        if code in (401, 403):
            return ModelUnavailable(f"{said}: check its API key")
        if code in REFUSED_INPUT:
            return BadInput(detail if self.relays_refusals and detail else said)
        return ModelUnavailable(said)

    def _json(self, raw: bytes):
        try:
            return json.loads(raw)
        except ValueError:
            raise TantraError(f"the {self.label} answered something that is not JSON") from None


def model_listing(endpoint: Endpoint) -> list[dict]:
    """``GET /models``'s entries, each a dict with an ``id``, or a one-line error."""
    listing = endpoint.get_json("/models")
    try:
        entries = listing["data"]
        if not all(isinstance(entry, dict) and "id" in entry for entry in entries):
            raise TypeError("an entry has no id")
        return entries
    except (KeyError, TypeError) as error:
        raise TantraError(f"the {endpoint.label} answered /models without a model list ({error})") from None


def _detail(error: urllib.error.HTTPError) -> str:
    """The server's own one-line reason (OpenAI's ``{"error": {"message"}}`` or plain text), short."""
    try:
        raw = error.read(2000).decode(errors="replace").strip()
    except OSError:
        return ""
    try:
        return _message(json.loads(raw))[:300]
    except (ValueError, TypeError, AttributeError):
        return raw.splitlines()[0][:300] if raw else ""


def _message(body) -> str:
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)
    return str(error)


def _retry_after(error: urllib.error.HTTPError, attempt: int) -> float:
    header = error.headers.get("Retry-After") if error.headers else None
    try:
        return max(0.0, float(header)) if header else 0.5 * 2**attempt
    except ValueError:
        return 0.5 * 2**attempt  # an HTTP date: rare, and the default backoff is close enough


def tantra_server(settings, timeout: float = 600.0) -> Endpoint:
    """The running ``tantra serve`` of ``--server`` (``settings.server``), with its key. A long timeout: a server's
    queue may hold others' work first. Its refusals are relayed as it words them: it writes them for the same
    person."""
    return Endpoint(settings.server_api, settings.server_api_key, timeout, "Tantra server", relays_refusals=True)
