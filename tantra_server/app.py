"""The ASGI application of ``tantra serve``: the warm models, one queue per role, the routes and their guards.

``create_app(loader, options)`` is all a test needs to serve fake backends; ``tantra_cli/serve.py`` runs it on
uvicorn with the real ones.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from config.errors import ModelUnavailable, TantraError
from tantra_server import audio, chat, images
from tantra_server.errors import ApiError, bad_request, error_response
from tantra_server.guard import Guard
from tantra_server.lanes import Lane
from tantra_server.streaming import ClientGone, until_gone

ROLES = ("language", "hearing", "voice", "vision", "memory")
# Names stock OpenAI clients send by default for a role; any of them gets this server's model of that role.
OPENAI_NAMES = {
    "hearing": ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"),
    "voice": ("tts-1", "tts-1-hd", "gpt-4o-mini-tts"),
    "memory": ("text-embedding-3-small", "text-embedding-ada-002"),
}
MAX_JSON_DEPTH = 64
"""Of a request body's lists and objects: a chat completion needs 5 (messages, a message, its parts, a part, an
image_url); deeper is an attack on the stack, answered 400 before anything walks it."""
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")


@dataclass(frozen=True)
class ServeOptions:
    api_key: str = ""
    """Every route but /health asks for it as a bearer token; empty: no key asked."""
    allow_dirs: tuple[Path, ...] = ()
    """Directories whose files a ``file://`` image URL may name; none: file URLs are refused."""
    max_body_bytes: int = 25 * 1024 * 1024
    """Longest request body (OpenAI's own limit for audio files is 25 MB)."""
    max_audio_seconds: float = 3600.0
    """Longest audio to transcribe in one request."""
    waiting: int = 32
    """Requests that may wait per role while one is served; more are answered 429."""
    ocr: bool | None = None
    """Read text in images by default (None: unless ``--low-resource``); a describe request may say otherwise."""


class TantraServer:
    """What every request shares: the loader (each model loaded once), the queues, the options."""

    def __init__(self, loader, options: ServeOptions) -> None:
        from core.language.conversation import PromptCache

        self.loader, self.options = loader, options
        self.allow_dirs = tuple(Path(d).expanduser().resolve() for d in options.allow_dirs)
        self.lanes = {role: Lane(role, workers=1, waiting=options.waiting) for role in ROLES}
        # One conversation's cache: only the next turn of the conversation it holds reuses it. The same prompt sent
        # again is read afresh, as ``tantra chat`` reads it, so a greedy answer is the same every time.
        self.prompt_cache = PromptCache(only_continued=True)
        self._load_lock = threading.RLock()
        self._describers: dict[bool, object] = {}
        self._failed: dict[str, TantraError] = {}
        self._voices: tuple[str, ...] | None = None

    # ---- the warm models ------------------------------------------------------------------------------------------

    def load(self, role: str):
        """The model of ``role``, loaded at the first call (the loader keeps it); a role that failed to load says
        the same at every request, without walking its chain again."""
        loader = self.loader
        with self._load_lock:  # two first requests at once load a model once, not twice side by side
            if role in self._failed:
                raise self._failed[role]
            # Its own models only: a server that passed requests on to a remote engine could end up waiting on itself.
            load = {"language": lambda: loader.load_spikingbrain(remote=False),
                    "hearing": lambda: loader.load_whisper(remote=False),
                    "voice": lambda: loader.load_speaker(remote=False),
                    "memory": lambda: loader.load_embedder(remote=False),
                    "vision": lambda: self.describer(None)}  # fmt: skip
            try:
                return load[role]()
            except TantraError as failure:
                self._failed[role] = failure
                raise

    def describer(self, ocr: bool | None):
        """The image describer that reads text in images or not (None: as ``--low-resource`` says), made once."""
        from core.vision.describer import ImageDescriber

        ocr = ocr if ocr is not None else self.options.ocr if self.options.ocr is not None else self.loader.reads_text
        with self._load_lock:
            if ocr not in self._describers:
                self.loader.load_vision()
                self._describers[ocr] = ImageDescriber(self.loader, ocr)
            return self._describers[ocr]

    async def model(self, role: str, asked: str = ""):
        """``role``'s model, loaded off the event loop; 404 when ``asked`` names a model this server does not have
        (empty: the role's own), 503 when the role cannot run here."""
        try:
            loaded = await anyio.to_thread.run_sync(self.load, role)
        except TantraError as failure:
            raise ApiError(503, f"the {role} model cannot run on this server: {failure}", "model_unavailable") from None
        if asked and asked not in names(role, loaded):
            raise ApiError(404, f"the model {asked!r} does not exist here; GET /v1/models lists them",
                           "model_not_found", "model")  # fmt: skip
        return loaded

    async def voice(self, voice):
        """The speech backend of ``voice``: OpenAI's voice names (and none) mean this server's voice; otherwise a
        voice this server has already (a pulled Piper voice, an espeak-ng voice), never a path or a download."""
        if voice is not None and not isinstance(voice, str):
            raise bad_request("voice must be a string", "voice")
        if not voice or voice in OPENAI_VOICES:
            return await self.model("voice")
        if voice not in await anyio.to_thread.run_sync(self.voices):
            raise bad_request(f"no voice {voice!r} here; OpenAI's voice names, or one of: {', '.join(self.voices())}",
                              "voice")  # fmt: skip
        try:
            return await anyio.to_thread.run_sync(lambda: self.loader.load_speaker(voice=voice, remote=False))
        except TantraError as failure:
            raise ApiError(503, f"the voice {voice!r} cannot run here: {failure}", "model_unavailable") from None

    def voices(self) -> tuple[str, ...]:
        """The voices a request may name: the store's Piper voices already pulled, and espeak-ng's."""
        if self._voices is None:
            from config.model_config import STORE_MODELS
            from core.runtime import model_store
            from core.voice.speaker import espeak_voices

            pulled = [m.name for m in STORE_MODELS if m.role == "voice"
                      and model_store.status(m, self.loader.settings).state == "ready"]  # fmt: skip
            self._voices = (*pulled, *espeak_voices())
        return self._voices

    def generate(self, chat, messages: list[dict], options, counts, truncate: bool):
        """The reply's text pieces from ``chat`` (a ``core.language.chat_model.ChatModel``), with the server's one
        prompt cache: a client that sends its growing conversation again reads only what is new."""
        return chat.stream(messages, options, counts, self.prompt_cache, truncate)

    async def image_note(self, source, number: int) -> str:
        """``[Image N: what it shows]``, the line the language model reads in place of an image."""
        from core.vision.describer import facts_note
        from core.vision.image_io import load_image

        describer = await self.model("vision")
        label = source.name if isinstance(source, Path) else f"image-{number}"
        return await self.lanes["vision"].call(lambda: facts_note(describer.facts(load_image(source, label), 3)))

    # ---- request bodies -------------------------------------------------------------------------------------------

    async def json_body(self, request: Request) -> dict:
        if "json" not in request.headers.get("content-type", "application/json"):
            raise ApiError(415, "send the request as JSON (Content-Type: application/json)", "unsupported_media_type")
        try:
            body = json.loads(await request.body())
            too_deep = _deeper_than(body, MAX_JSON_DEPTH)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("the request body is not valid JSON") from None
        except RecursionError:  # "[" x 100,000: the parser's own stack gives out
            too_deep = True
        if too_deep:
            raise bad_request(f"the request body is nested more than {MAX_JSON_DEPTH} levels deep")
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        return body

    async def form(self, request: Request) -> FormData:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "send the file as multipart/form-data", "unsupported_media_type")
        try:
            return await request.form(max_files=1, max_fields=32, max_part_size=self.options.max_body_bytes)
        except ApiError:
            raise
        except Exception as failure:  # noqa: BLE001 - python-multipart's and Starlette's parse errors
            raise bad_request(f"the multipart body cannot be read ({failure})") from None


def _deeper_than(value, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` deep (walked without recursion: the point is
    that nothing after the parser recurses into a body built to exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return False


def names(role: str, loaded) -> tuple[str, ...]:
    """The names a request may give for ``role``'s ``loaded`` model: its own, then the aliases clients use."""
    own = {
        "language": lambda: loaded["name"], "hearing": lambda: loaded.model_name,
        "vision": lambda: "efficientnet-lite0", "voice": lambda: f"{loaded.name}:{loaded.voice}",
        "memory": lambda: loaded.name,
    }[role]()  # fmt: skip
    return (own, *{"language": ("tantra", "spikingbrain")}.get(role, ()), *OPENAI_NAMES.get(role, ()))


# ---- routes ----------------------------------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    server: TantraServer = request.app.state.tantra
    return JSONResponse({"status": "ok", "queues": {role: lane.status() for role, lane in server.lanes.items()}})


async def list_models(request: Request) -> Response:
    server: TantraServer = request.app.state.tantra
    return JSONResponse({"object": "list", "data": await anyio.to_thread.run_sync(_models, server)})


async def get_model(request: Request) -> Response:
    server: TantraServer = request.app.state.tantra
    wanted = request.path_params["model"]
    for entry in await anyio.to_thread.run_sync(_models, server):
        if entry["id"] == wanted:
            return JSONResponse(entry)
    raise ApiError(404, f"the model {wanted!r} does not exist here", "model_not_found", "model")


def _models(server: TantraServer) -> list[dict]:
    """The model of every role that loads, the language model first (clients that take "the first model")."""
    entries = []
    for role in ("language", "hearing", "voice", "memory", "vision"):
        try:
            loaded = server.load(role)
        except TantraError:
            continue  # a role that cannot run here is not offered
        entry = {"id": names(role, loaded)[0], "object": "model", "created": 0, "owned_by": "tantra", "role": role}
        if role == "language":  # Tantra's own: a client (tantra --server) can say how the answers were made
            entry["spiking"] = bool(loaded["chat"].spiking)
        entries.append(entry)
    return entries


async def embeddings(request: Request) -> Response:
    import base64

    import numpy as np

    server: TantraServer = request.app.state.tantra
    body = await server.json_body(request)
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts) or len(texts) > 2048:
        raise bad_request("input must be a string or a list of 1 to 2048 strings (token arrays are not taken)",
                          "input")  # fmt: skip
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise bad_request("encoding_format must be float or base64", "encoding_format")
    embedder = await server.model("memory", str(body.get("model") or ""))
    if body.get("dimensions") not in (None, embedder.dim):
        raise bad_request(f"this model gives {embedder.dim} dimensions only", "dimensions")
    vectors = await until_gone(request, server.lanes["memory"].call(embedder.embed, texts))
    tokens = embedder.count_tokens(texts)
    data = [{"object": "embedding", "index": i,
             "embedding": base64.b64encode(np.asarray(v, "<f4").tobytes()).decode() if fmt == "base64" else v.tolist()}
            for i, v in enumerate(vectors)]  # fmt: skip
    return JSONResponse({"object": "list", "data": data, "model": embedder.name,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip


# ---- errors ---------------------------------------------------------------------------------------------------------


async def _api_error(request: Request, error: ApiError) -> Response:
    return error.response()


async def _tantra_error(request: Request, error: TantraError) -> Response:
    if isinstance(error, ModelUnavailable):
        return error_response(503, str(error), "model_unavailable")
    return error_response(400, str(error))  # bad input, or what the model cannot do (a language, a task)


async def _not_found(request: Request, error) -> Response:
    status = getattr(error, "status_code", 404)
    message = "no such route; see GET /v1/models" if status == 404 else f"{request.method} is not allowed here"
    return error_response(status, message)


async def _unexpected(request: Request, error: Exception) -> Response:
    return error_response(500, f"the server failed ({type(error).__name__}); see its log")


async def _gone(request: Request, error: ClientGone) -> Response:
    return Response(status_code=499)  # nobody reads it: nginx's code for "the client closed the request"


class TantraApp(Starlette):
    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception as error:  # noqa: BLE001 - answered 500 already; Starlette re-raises it for the server
            # Named by type only, never the traceback or message: they could carry a prompt, and the log keeps none.
            import logging

            logging.getLogger("tantra.serve").error("unexpected %s in %s", type(error).__name__, scope.get("path"))


def create_app(loader, options: ServeOptions = ServeOptions()) -> Starlette:
    routes = [
        Route("/health", health),
        Route("/v1/models", list_models),
        Route("/v1/models/{model:path}", get_model),
        Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
        Route("/v1/audio/transcriptions", audio.transcriptions, methods=["POST"]),
        Route("/v1/audio/translations", audio.translations, methods=["POST"]),
        Route("/v1/audio/speech", audio.speech, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/tantra/describe", images.describe, methods=["POST"]),
    ]
    handlers = {ApiError: _api_error, TantraError: _tantra_error, ClientGone: _gone, 404: _not_found,
                405: _not_found, Exception: _unexpected}  # fmt: skip
    middleware = [Middleware(Guard, api_key=options.api_key, max_body_bytes=options.max_body_bytes)]
    app = TantraApp(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.tantra = TantraServer(loader, options)
    return app
