"""The language model on an OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, another ``tantra serve``):
``/v1/chat/completions`` streamed as server-sent events.

The server holds the model and its chat template, so a conversation goes as OpenAI messages and comes back as text
pieces; there is no tokenizer here, and the token counts are the server's own (its usage chunk) where it sends them.
Only the standard library is used (``core.runtime.openai_http``): no SDK to install for an optional backend.
"""

from __future__ import annotations

from collections.abc import Iterator

from config.errors import ModelUnavailable, TantraError
from core.language.chat_model import TokenCounts
from core.runtime.openai_http import Endpoint, model_listing

MAX_STOPS = 4  # OpenAI's limit on ``stop`` strings; servers that follow it refuse more (400)
CHARACTERS_PER_TOKEN = 4  # OpenAI's rule of thumb for English: only for a server that reports no usage


class RemoteChatModel:
    """A chat model that a server runs (a ``core.language.chat_model.ChatModel``); ``stream`` answers a
    conversation piece by piece. The server holds the context and the chat template."""

    device = "remote"

    def __init__(self, endpoint: Endpoint, model: str, tantra: bool = False, spiking: bool = False) -> None:
        self.endpoint = endpoint
        self.model = self.name = model
        """The name the server knows the model by."""
        self.tantra = tantra
        """The server is a ``tantra serve``: it takes top_k and repetition_penalty too, so a chat through it samples
        exactly as the same chat here."""
        self.spiking = spiking
        """The server says its model is SpikingBrain, spiking (``tantra serve`` says so in ``/models``)."""

    @classmethod
    def connect(cls, base_url: str, model: str = "", api_key: str = "", timeout: float = 60.0) -> RemoteChatModel:
        """The server's model after one ``GET /models``: it answers, takes the key, and ``model`` is its first model
        when empty. Raises ``ModelUnavailable`` (or ``TantraError``) otherwise, so the local chain loads instead."""
        endpoint = Endpoint(base_url, api_key, timeout, "language model server")
        entries = model_listing(endpoint)
        listed = [str(entry["id"]) for entry in entries]
        tantra = any(entry.get("owned_by") == "tantra" for entry in entries)
        if not model:
            if not listed:
                raise ModelUnavailable(f"the {endpoint.label} lists no models; set TANTRA_LANGUAGE_MODEL")
            model = listed[0]
        spiking = any(entry["id"] == model and entry.get("spiking") is True for entry in entries)
        # A name it does not list is still tried: proxies and aliases (Ollama's tags, vLLM's served names) answer
        # to more names than they list, and a wrong one fails at the first message with the server's own reason.
        return cls(endpoint, model, tantra, spiking)

    @property
    def label(self) -> str:
        """How messages name it: "the language model server at http://gpu-box:8000/v1"."""
        return self.endpoint.label

    where = label

    def describe(self) -> str:
        return (f"{self.name}: served by the {self.label} (OpenAI-compatible API)\n"
                "the server runs it: no spike coding here; top_k and repetition_penalty are not sent")  # fmt: skip

    def stats(self, counts: TokenCounts) -> list[str]:
        return [f"from the {self.label}, network included"
                + ("" if counts.reported else "; it sent no token counts: these are estimates")]

    def warm_up(self) -> None:
        """The server's model is warm already."""

    def read_ahead(self, messages: list[dict], cache) -> None:
        """The server reads its prompts itself."""

    def __repr__(self) -> str:
        return f"RemoteChatModel({self.model!r} at {self.label!r})"  # never the key

    def request(self, messages: list[dict], options, stream: bool = True) -> dict:
        """The ``/chat/completions`` body for ``messages`` with ``options`` (a
        ``core.language.conversation.SamplingOptions``).

        top_k and repetition_penalty are not OpenAI parameters (OpenAI itself refuses unknown ones): sent to a
        ``tantra serve`` only."""
        body: dict = {
            "model": self.model,
            "messages": messages,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "max_tokens": options.max_tokens,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if options.stop:
            body["stop"] = list(options.stop[:MAX_STOPS])
        if options.seed is not None:
            body["seed"] = options.seed
        if self.tantra:  # and the oldest exchanges give way when the conversation outgrows the context, as here
            body.update(top_k=options.top_k, repetition_penalty=options.repetition_penalty, truncation="auto")
        return body

    def stream(self, messages: list[dict], options, counts: TokenCounts | None = None, cache=None,
               truncate: bool = True) -> Iterator[str]:  # fmt: skip
        """The reply's text pieces as the server sends them. ``counts`` is filled in as they come. Closing the
        generator early (Ctrl-C, a stop) closes the connection, and the server stops generating. ``cache``: the
        server keeps its own; ``truncate``: a ``tantra serve`` is asked to, other servers decide."""
        counts = counts if counts is not None else TokenCounts()
        counts.token_ids, counts.limit = [], options.max_tokens
        counts.prompt_tokens = estimate_tokens(" ".join(str(m.get("content", "")) for m in messages))
        counts.completion_tokens, counts.reported = 0, False
        pieces = 0
        events = self.endpoint.events("/chat/completions", self.request(messages, options))
        try:
            for event in events:
                usage = event.get("usage") if isinstance(event, dict) else None
                if isinstance(usage, dict) and "completion_tokens" in usage:
                    counts.prompt_tokens = int(usage.get("prompt_tokens") or counts.prompt_tokens)
                    counts.completion_tokens, counts.reported = int(usage["completion_tokens"]), True
                text = _text_of(event, self.label)
                if text:
                    pieces += 1
                    if not counts.reported:
                        counts.completion_tokens = pieces  # a streamed piece is one token on every server we know
                    yield text
        finally:
            events.close()


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARACTERS_PER_TOKEN - 1) // CHARACTERS_PER_TOKEN


def _text_of(event, label: str) -> str:
    """The text an event adds: ``choices[0].delta.content`` of a chunk, or ``choices[0].message.content`` of a
    whole answer from a server that did not stream. The usage chunk has no choices."""
    if not isinstance(event, dict):
        raise TantraError(f"the {label} sent an event that is not a chat completion chunk")
    choices = event.get("choices")
    if not choices:
        if "usage" in event or choices == []:
            return ""
        raise TantraError(f"the {label} sent an event that is not a chat completion chunk (no choices)")
    try:
        choice = choices[0]
        part = choice.get("delta") or choice.get("message") or {}
        content = part.get("content")
    except (AttributeError, IndexError, TypeError):
        raise TantraError(f"the {label} sent an event that is not a chat completion chunk") from None
    if isinstance(content, list):  # a list of parts, as some servers send
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def from_settings(settings) -> RemoteChatModel | None:
    """The configured server's model (``TANTRA_LANGUAGE_URL`` ...), probed; None when no server is configured."""
    if not settings.language_url:
        return None
    return RemoteChatModel.connect(settings.language_url, settings.language_model, settings.language_api_key,
                                   float(settings.language_timeout))  # fmt: skip
