"""Describing images and answering about them: what ``tantra describe`` and the chat's images both use.

An image's facts (labels, text, size) always come from the local models, so every answer can be checked against
them and the language model, which sees no pixels, can read them. An answer comes from the vision chain: Long-VITA
on a server where one is configured, else the local models (the hedged labels, or SpikingBrain reading the facts
when there is a question).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from config.errors import TantraError
from core.runtime.fallback import Candidate, GiveWay, first_that_works
from core.vision.image_classifier import Label
from core.vision.image_io import load_image

if TYPE_CHECKING:  # the loader hands the describer its models; the describer never builds one
    from core.model_loader import ModelLoader

DESCRIBE = "Describe this image in one or two sentences."


def _percent(score: float) -> str:
    return f"{score:.0%}" if score >= 0.01 else "<1%"


def sentence(labels: list[Label]) -> str:
    """A line a person reads: as sure as the classifier is, and no surer."""
    best = labels[0]
    if best.score >= 0.6:
        lead = f"Looks like {best.name} ({_percent(best.score)})"
    elif best.score >= 0.25:
        lead = f"Probably {best.name} ({_percent(best.score)})"
    else:
        lead = f"Not sure: perhaps {best.name} ({_percent(best.score)})"
    others = [label for label in labels[1:3] if label.score >= 0.05]
    if others:
        lead += ", or " + " or ".join(f"{label.name} ({_percent(label.score)})" for label in others)
    return lead + "."


def facts_sentence(facts: dict) -> str:
    """The facts as one line: the hedged labels, then any text read in the image."""
    said = sentence([Label(label["name"], label["score"]) for label in facts["labels"]])
    if facts["text"]:
        said += " Text in the image: " + " / ".join(line["text"] for line in facts["text"])
    return said


def facts_note(facts: dict) -> str:
    """``[Image NAME: what it shows]``, the line a language model reads in place of the image."""
    return f"[Image {Path(facts['image']).name}: {facts_sentence(facts)}]"


class ImageDescriber:
    """What images show, as facts and answers. The models load on first use and stay loaded (in the loader)."""

    def __init__(self, loader: ModelLoader, ocr: bool | None = None, engine: str | None = None) -> None:
        """``ocr`` None: read text unless ``--low-resource``; ``engine`` pins the classifier's engine."""
        self.loader, self.engine = loader, engine
        self.ocr = loader.reads_text if ocr is None else ocr
        self.remote = loader.load_remote_vision()
        """Long-VITA on a server, or None where none is configured."""
        self._reader = None
        self._server = None
        if loader.settings.server and engine is None:  # --server: its classifier and OCR, unless one is pinned here
            from core.runtime.openai_http import tantra_server

            self._server = tantra_server(loader.settings, timeout=120)
        self._server_fallback = GiveWay(lambda: self._seen_here, loader.warn, "images are read here instead")

    def facts(self, source, top: int = 5) -> dict:
        """``{"image", "format", "width", "height", "frames", "mode", "model", "engine", "labels", "text"}`` for
        ``source``: a path, image bytes, or the ``(image, info)`` pair ``load_image`` already returned."""
        image, info = load_image(source) if not isinstance(source, tuple) else source
        return {
            "image": info.label, "format": info.format, "width": info.width, "height": info.height,
            "frames": info.frames, "mode": info.mode, **self._seen(image, info.label, top),
        }  # fmt: skip

    def _seen(self, image, label: str, top: int) -> dict:
        """What the models see: a ``tantra serve``'s with ``--server`` (``core.vision.server_facts``) until it fails
        (said in one line), then this process's."""
        if self._server is not None and self._server_fallback.engine is None:
            from core.vision.server_facts import seen_by_server

            try:
                return seen_by_server(self._server, image, label, top, self.ocr)
            except TantraError as failure:  # a refusal of this image is raised as it is
                self._server_fallback.after(failure)
        return self._seen_here(image, top)

    def _seen_here(self, image, top: int) -> dict:
        classifier = self.loader.load_vision(self.engine)  # loaded once, then cached by the loader
        seen = classifier.look(image, top)
        lines = []
        if self.ocr:
            from core.vision.ocr import TextReader

            self._reader = self._reader or TextReader()
            lines = self._reader.read(image)
        return {
            "model": classifier.name, "engine": classifier.engine,
            "labels": [{"name": label.name, "score": label.score} for label in seen.labels],
            "text": [{"text": line.text, "score": line.score, "box": line.box} for line in lines],
        }  # fmt: skip

    def note(self, source) -> str:
        """``[Image NAME: what it shows]`` for ``source``: what a language model reads in place of the image."""
        return facts_note(self.facts(source, top=3))

    def answer(self, image, facts: dict, prompt: str | None = None) -> str:
        """The answer to ``prompt`` about ``image`` (a description when there is none), from the first entry of the
        vision chain that answers: the remote model where one is configured, else the local models."""
        remote = self.remote
        local = "SpikingBrain, from the local classifier's facts" if prompt else "the local classifier"
        entries = {
            "long-vita-remote": Candidate(
                "long-vita-remote",
                lambda: remote.ask(image, prompt or DESCRIBE),
                None if remote is not None else "no server configured (TANTRA_VISION_URL)",
            ),
            self.loader.config.vision.default: Candidate(local, lambda: self._answer_locally(facts, prompt)),
        }
        candidates = [entries[entry] for entry in self.loader.config.vision.chain.entries]
        return first_that_works(candidates, "vision model", self.loader.warn)

    def _answer_locally(self, facts: dict, prompt: str | None) -> str:
        if not prompt:
            return facts_sentence(facts)
        from core.language.chat_session import ChatSession
        from core.language.conversation import SamplingOptions

        loaded = self.loader.load_spikingbrain()  # loaded once by the loader, for every image
        # A language model server that fails gives way to the local model, as in a chat.
        chat = ChatSession.of(loaded, SamplingOptions(temperature=0.2, max_tokens=120),
                              fallback=lambda: self.loader.load_spikingbrain(remote=False), warn=self.loader.warn)
        return "".join(chat.ask(f"{facts_note(facts)}\n\n{prompt}")).strip()
