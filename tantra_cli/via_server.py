"""The CLI as a client of a running ``tantra serve`` (``--server URL`` / ``TANTRA_SERVER``): the server's warm models
do the work, this process only sends files and prints what comes back, the same way the local models' output is
printed. Nothing here imports a model library; a server that cannot be reached raises ``ModelUnavailable`` and the
command says so in one line and runs the local models instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from config.errors import BadInput, ModelUnavailable, TantraError
from config.settings import Settings
from core.runtime.openai_http import Endpoint
from core.runtime.status import say


def endpoint(settings: Settings, timeout: float = 600.0) -> Endpoint:
    """The server's ``/v1`` API with its key. A long timeout: a server's queue may hold others' work first."""
    base = settings.server.rstrip("/")
    base = base if base.endswith("/v1") else base + "/v1"
    return Endpoint(base, settings.server_api_key, timeout, "Tantra server", relays_refusals=True)


def answers(api: Endpoint) -> None:
    """Raises ``ModelUnavailable`` unless the server answers and takes the key: asked before stdin is read, so
    that the local models can still read it when the server is down."""
    api.get_json("/models")


def falls_back(failure: TantraError) -> bool:
    """Whether the local models should answer instead: the server is down or failing, not refusing the input."""
    return isinstance(failure, ModelUnavailable)


# ---- transcribe ------------------------------------------------------------------------------------------------------


def transcript(api: Endpoint, audio: bytes, filename: str, model: str | None, language: str | None, task: str,
               words: bool) -> dict:  # fmt: skip
    """The server's ``verbose_json`` transcript of a whole file (read and cut into blocks there, as here)."""
    fields: dict[str, str | list[str]] = {"response_format": "verbose_json", "model": model or "whisper-1",
                                          "timestamp_granularities[]": ["segment", "word"] if words else ["segment"]}
    if language:
        fields["language"] = language
    route = "/audio/translations" if task == "translate" else "/audio/transcriptions"
    return _upload(api, route, fields, filename, audio)


def audio_input(source: str) -> tuple[str, bytes]:
    """``(label, bytes)`` of an audio file, or of stdin for ``-``; the server reads and checks what they hold."""
    import sys

    if source == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise BadInput("stdin is a terminal or closed, not audio: pipe a file in, e.g. "
                           "`tantra transcribe - < talk.wav`")  # fmt: skip
        data = sys.stdin.buffer.read()
        if not data:
            raise BadInput("stdin: is empty; pipe audio in, e.g. `tantra transcribe - < talk.wav`")
        return "stdin", data
    path = Path(source)
    if path.is_dir():
        raise BadInput(f"{source}: is a directory, not an audio file")
    try:
        return source, path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{source}: no such file") from None
    except OSError as error:
        raise BadInput(f"{source}: {(error.strerror or str(error)).lower()}") from None


def segments_of(verbose: dict, with_words: bool, label: str):
    """``core.hearing.transcriber.Segment``s and a ``Transcript`` from a ``verbose_json`` body, for the file writers."""
    from core.hearing.transcriber import Segment, Transcript, Word

    words = [Word(w["start"], w["end"], w["word"], w.get("probability", 0.0)) for w in verbose.get("words") or []]
    segments = []
    for s in verbose.get("segments") or []:
        inside = tuple(w for w in words if s["start"] <= w.start < s["end"] or (w.start == s["end"] == w.end))
        segments.append(Segment(s["id"], s["start"], s["end"], s["text"], inside if with_words else None,
                                s.get("avg_logprob"), s.get("no_speech_prob")))  # fmt: skip
    return segments, Transcript(label, verbose.get("duration"), verbose.get("language"))


# ---- describe --------------------------------------------------------------------------------------------------------


def image_facts(api: Endpoint, image: bytes, label: str, top: int = 5, ocr: bool | None = None,
                prompt: str | None = None) -> dict:  # fmt: skip
    """What ``ImageDescriber.facts`` gives (and ``answer`` when the server's vision chain answers), from the server."""
    fields = {"top": str(top)}
    if ocr is not None:
        fields["ocr"] = "true" if ocr else "false"
    if prompt:
        fields["prompt"] = prompt
    return _upload(api, "/tantra/describe", fields, label, image)


def _upload(api: Endpoint, route: str, fields: dict, label: str, data: bytes) -> dict:
    """The server's JSON answer to a file sent with ``fields``; a refusal names the file as local errors do (the
    server knows only its name, and says nothing of it for a body over its size limit)."""
    try:
        with api.post_form(route, fields, {"file": (label, data, "application/octet-stream")}) as response:
            return _json(api, api.read(response))
    except BadInput as refused:
        raise BadInput(f"{label}: {str(refused).removeprefix(f'{Path(label).name}: ')}") from None


def image_inputs(source: str) -> Iterator[tuple[str, bytes]]:
    """``(label, bytes)`` of an image, of stdin for ``-``, or of each of a few evenly spaced frames of a video."""
    import sys

    from core.vision.image_io import VIDEO_SUFFIXES, check_image_file, video_frames

    if source == "-":
        data = sys.stdin.buffer.read()
        if not data:
            raise BadInput("stdin is empty: pipe an image in")
        yield "stdin", data
        return
    path = Path(source)
    if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
        for seconds, frame in video_frames(path):
            yield f"{source} at {seconds:g} s", frame
        return
    check_image_file(path, source)  # as the local models say it
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInput(f"{source}: {(error.strerror or str(error)).lower()}") from None
    yield source, data


class ServerDescriber:
    """``ImageDescriber``'s ``facts`` and ``note`` for a chat whose images the server reads; when the server cannot
    be reached, one line says so and ``local()`` (an ``ImageDescriber``) reads them from then on."""

    def __init__(self, api: Endpoint, local: Callable[[], object]) -> None:
        self.api, self.local = api, local
        self._local = None

    def facts(self, source, top: int = 5) -> dict:
        if self._local is not None:
            return self._local.facts(source, top)
        label, data = next(image_inputs(str(source)))
        try:
            return image_facts(self.api, data, label, top)
        except ModelUnavailable as failure:
            say(f"{failure}; images are read here instead")
            self._local = self.local()
            return self._local.facts(source, top)

    def note(self, source) -> str:
        from core.vision.describer import facts_note

        return facts_note(self.facts(source, top=3))


def as_engines(settings: Settings) -> Settings:
    """``settings`` with the server as the remote engine of the language model, speech to text and speech out,
    where no other is set: how a chat, typed or spoken, uses a running ``tantra serve`` (each role's ``remote_*``
    engine)."""
    if not settings.server:
        return settings
    api = endpoint(settings)
    engines = {}
    for role in ("lm", "stt", "tts"):
        if not getattr(settings, f"{role}_url"):
            engines.update({f"{role}_url": api.base_url, f"{role}_api_key": settings.server_api_key})
    return replace(settings, **engines)


# ---- memory ----------------------------------------------------------------------------------------------------------


class ServerEmbedder:
    """The memory's sentence embedder, run by the server (``/v1/embeddings``): the same model as here, so the
    memory's vectors are the same whichever embeds them."""

    def __init__(self, api: Endpoint) -> None:
        self.api = api
        models = {m.get("role"): m["id"] for m in api.get_json("/models").get("data", []) if isinstance(m, dict)}
        if "embeddings" not in models:
            raise ModelUnavailable(f"the {api.label} has no embedding model")
        self.name = models["embeddings"]
        self.dim = len(self.embed(["dimension probe"])[0])

    @staticmethod
    def or_local(settings: Settings, local: Callable[[], object]) -> Callable[[], object]:
        """A factory for the memory's embedder: the server's where it answers, else (said in one line) ``local``."""

        def load():
            try:
                return ServerEmbedder(endpoint(settings, timeout=60))
            except ModelUnavailable as failure:
                say(f"{failure}; the memory embeds here instead")
                return local()

        return load if settings.server else local

    def embed(self, texts):
        import numpy as np

        answer = self.api.post_json("/embeddings", {"model": self.name, "input": list(texts),
                                                    "encoding_format": "float"})  # fmt: skip
        rows = sorted(answer.get("data", []), key=lambda d: d["index"])
        return np.asarray([row["embedding"] for row in rows], dtype=np.float32).reshape(len(texts), -1)


def _json(api: Endpoint, raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except ValueError:
        raise TantraError(f"the {api.label} answered something that is not JSON") from None
    if not isinstance(body, dict):
        raise TantraError(f"the {api.label} answered JSON of the wrong shape")
    return body
