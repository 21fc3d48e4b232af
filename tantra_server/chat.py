"""``POST /v1/chat/completions``: SpikingBrain answering OpenAI chat requests, streamed (SSE) or whole.

Images in a message (``image_url`` parts: data URLs, or file URLs under a directory the operator allowed) are
read by the local vision models, and the language model reads what they show as text, as ``tantra chat`` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tantra_server.errors import ApiError, bad_request
from tantra_server.streaming import HeldStreamingResponse, iterate_in_thread, until_gone

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
UNSUPPORTED = ("tools", "functions", "tool_choice", "logprobs", "top_logprobs", "audio", "prediction")


async def chat_completions(request: Request) -> Response:
    server = request.app.state.tantra
    body = await server.json_body(request)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad_request("give the model: one of GET /v1/models", "model")
    loaded = await server.model("language", body["model"])
    messages = await _messages(body, server)
    options, include_usage = _options(body)
    stream = bool(body.get("stream"))
    # With "truncation": "auto" (as OpenAI's Responses API names it; ``tantra --server`` sends it) the oldest
    # exchanges give way when the conversation outgrows the context, as ``tantra chat`` keeps one going.
    truncate = body.get("truncation") == "auto"

    from core.language.chat_model import TokenCounts

    lane = server.lanes["language"]
    leave = await until_gone(request, lane.enter())
    try:
        counts = TokenCounts()
        make = lambda: server.generate(loaded["chat"], messages, options, counts, truncate)  # noqa: E731
        pieces = iterate_in_thread(make, lane.threads, done=leave)
        first = await until_gone(request, _first(pieces))  # a prompt too long is a 400, before any answer
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": loaded["name"]}
        if stream:
            events = _events(first, pieces, counts, meta, include_usage)
            unbuffered = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            answer = HeldStreamingResponse(events, leave, media_type="text/event-stream", headers=unbuffered)
            leave = None  # the response gives the place back now, when it ends
            return answer
        text = first + await until_gone(request, _joined(pieces))
    finally:
        if leave is not None:
            leave()
    return JSONResponse({
        **meta, "object": "chat.completion", "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text.strip()},
                     "logprobs": None, "finish_reason": _finish(counts)}],
        "usage": _usage(counts),
    })  # fmt: skip


async def _first(pieces: AsyncIterator[str]) -> str:
    """The reply's first piece ("" for an empty reply), or the model's refusal as an API error."""
    from core.language.chat_model import PromptTooLong

    try:
        return await anext(pieces, "")
    except PromptTooLong as problem:
        await pieces.aclose()
        raise ApiError(400, str(problem), "context_length_exceeded", "messages") from None


async def _joined(pieces: AsyncIterator[str]) -> str:
    async with aclosing(pieces):
        return "".join([piece async for piece in pieces])


async def _events(first: str, pieces: AsyncIterator[str], counts, meta: dict, include_usage: bool):
    def event(choices: list, **extra) -> bytes:
        chunk = {**meta, "object": "chat.completion.chunk", "system_fingerprint": None, "choices": choices, **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

    def delta(content: dict, finish: str | None = None) -> list:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]

    no_usage_yet = {"usage": None} if include_usage else {}  # as OpenAI marks every chunk before the usage one
    yield event(delta({"role": "assistant", "content": ""}), **no_usage_yet)
    try:
        async with aclosing(pieces):
            if first:
                yield event(delta({"content": first}), **no_usage_yet)
            async for piece in pieces:
                yield event(delta({"content": piece}), **no_usage_yet)
    except Exception as failure:  # noqa: BLE001 - the status was sent: the error goes in the stream, as OpenAI does
        message = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
        yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n".encode()
        return
    yield event(delta({}, _finish(counts)), **no_usage_yet)
    if include_usage:
        yield event([], usage=_usage(counts))
    yield b"data: [DONE]\n\n"


def _finish(counts) -> str:
    return "length" if counts.cut_short else "stop"


def _usage(counts) -> dict:
    return {"prompt_tokens": counts.prompt_tokens, "completion_tokens": counts.completion_tokens,
            "total_tokens": counts.prompt_tokens + counts.completion_tokens}  # fmt: skip


def _options(body: dict):
    """SamplingOptions from the request (Tantra's chat defaults where it says nothing), and whether the stream ends
    with a usage chunk."""
    from core.language.conversation import SamplingOptions

    for name in UNSUPPORTED:
        if body.get(name) not in (None, False, [], {}):
            raise bad_request(f"{name} is not supported by this server", name)
    if body.get("n", 1) != 1:
        raise bad_request("n must be 1: one answer per request", "n")
    response_format = body.get("response_format") or {}
    kind = response_format.get("type", "text") if isinstance(response_format, dict) else response_format
    if kind != "text":
        raise bad_request(f"response_format {kind!r} is not supported; only text", "response_format")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, list | tuple) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise bad_request("stop is a string or a list of up to 4 non-empty strings", "stop")
    defaults = SamplingOptions()
    values = {
        "temperature": _number(body, "temperature", defaults.temperature, 0.0, 2.0),
        "top_p": _number(body, "top_p", defaults.top_p, 0.0, 1.0),
        "top_k": int(_number(body, "top_k", defaults.top_k, 0, None)),  # vLLM's and llama.cpp's extensions
        "repetition_penalty": _number(body, "repetition_penalty", defaults.repetition_penalty, 1.0, None),
        "max_tokens": int(_number(body, "max_completion_tokens", _number(body, "max_tokens", 0, 1, None), 1, None)),
        "stop": tuple(stop),
        "seed": int(body["seed"]) if isinstance(body.get("seed"), int) and not isinstance(body["seed"], bool) else None,
    }
    if values["top_p"] == 0:
        values["top_p"] = 1.0  # 0 would keep nothing; as OpenAI, it means "no nucleus cut"
    options = (body.get("stream_options") or {}) if body.get("stream") else {}
    if not isinstance(options, dict):
        raise bad_request("stream_options must be an object", "stream_options")
    return SamplingOptions(**values), bool(options.get("include_usage"))


def _number(body: dict, name: str, default, low, high):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{name} must be a number", name)
    if value < low or (high is not None and value > high):
        raise bad_request(f"{name} must be between {low} and {high}" if high is not None else
                          f"{name} must be at least {low}", name)  # fmt: skip
    return value


async def _messages(body: dict, server) -> list[dict]:
    """OpenAI messages as the chat template takes them: the leading system messages as one (Tantra's default
    system prompt where there is none), text content, and images as the note of facts the language model reads in
    their place, laid out as ``tantra chat`` lays them out (``core.language.grounding``). A system message later in the
    conversation stays where it is: it is a note for the turn after it (``tantra --server chat`` sends them)."""
    from core.language.grounding import DEFAULT_SYSTEM, Grounds, turn_messages

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list", "messages")
    system, turns = [], []
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise bad_request(f"messages[{number}].role must be system, developer, user or assistant",
                              f"messages[{number}].role")  # fmt: skip
        role = ROLES[message["role"]]
        text, images = await _content(message.get("content"), number, server)
        if role == "system" and not turns:
            system.append(text)
        elif role == "user":
            turns += turn_messages(text, Grounds(images=tuple(images)))
        else:
            turns.append({"role": role, "content": text})
    if not any(m["role"] == "user" for m in turns):
        raise bad_request("messages hold no user message", "messages")
    return [{"role": "system", "content": "\n\n".join(system) if system else DEFAULT_SYSTEM}] + turns


async def _content(content, number: int, server) -> tuple[str, list[str]]:
    """The text of a message, and the facts line of each of its images."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise bad_request(f"messages[{number}].content must be a string or a list of parts",
                          f"messages[{number}].content")  # fmt: skip
    texts, notes = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            if not isinstance(url, str):
                raise bad_request("an image_url part needs a url", f"messages[{number}].content")
            notes.append(await server.image_note(image_source(url, server.allow_dirs), len(notes) + 1))
        else:
            raise bad_request(f"messages[{number}] has a part of type {kind!r}; text and image_url are supported",
                              f"messages[{number}].content")  # fmt: skip
    return "\n".join(texts), notes


def image_source(url: str, allowed: tuple[Path, ...]) -> bytes | Path:
    """The image an ``image_url`` names: the bytes of a data URL, or a file under an allowed directory. The server
    never fetches a URL: that would let any client make it reach into the network it sits in."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "data":
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise bad_request("an image data URL must be base64 (data:image/png;base64,...)", "image_url")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("the image data URL is not valid base64", "image_url") from None
    if scheme == "file":
        return allowed_file(Path(unquote(urlsplit(url).path)), allowed)
    raise bad_request("this server fetches no URLs: send the image as a data URL (or a file URL under an allowed "
                      "directory)", "image_url")  # fmt: skip


def allowed_file(path: Path, allowed: tuple[Path, ...]) -> Path:
    """``path`` resolved, when it is a file under one of the ``allowed`` directories (``--allow-dir``)."""
    try:
        resolved = path.resolve()  # links and .. resolved first: a link out of an allowed directory is refused
    except (OSError, ValueError):  # a NUL byte, a loop of links
        raise bad_request(f"{path} is not a usable file path", "image_url") from None
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise ApiError(403, "file URLs may only name files under a directory the server allows (--allow-dir)",
                       "file_not_allowed", "image_url")  # fmt: skip
    if not resolved.is_file():
        raise bad_request(f"no such image file: {path}", "image_url")
    return resolved
