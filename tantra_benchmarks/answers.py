"""``tantra bench answers``: does the model use what Tantra hears, sees and remembers? 122 grounded questions
(``tantra_benchmarks.answer_items``), asked through the chat's own code (``ChatSession``: the prompt layout, the
memory, the image describer), scored by pattern, per category, spiking and plain, for each configuration.

A configuration is a prompt layout, a system prompt and a sampling: "before" is how every chat was built before
``core.language.grounding`` (the facts inline before the question, the chat template's own system prompt, temperature
0.7), "after" is today's defaults. Items of the tuning split chose the defaults; the report is on the rest.

Everything runs in this process on fresh state: the memory items use a database of their own in a temporary
directory (each fact told in a conversation of its own with the model's real reply, each question asked in a new
one and taken back afterwards), and conversation items answer every earlier turn with the model, as a chat would.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from config.settings import Settings
from core.language.conversation import SamplingOptions
from core.language.grounding import DEFAULT_SYSTEM, LAYOUT, VOICE_SYSTEM
from tantra_benchmarks.answer_items import CATEGORIES, IMAGES, Item, items, turns_back
from tantra_benchmarks.common import model_loader

ANSWER_TOKENS = 64
"""Of a reply to a question: the answer is in its first sentence or two."""
EARLIER_TOKENS = 40
"""Of a reply to an earlier turn (a fact told, a question between): enough to be a real reply in the history."""
STAGE_DIRECTION = re.compile(  # *an action* or (smiling); Markdown's **bold** is not one
    r"(?<!\*)\*(?!\*)[^*\n]{2,100}(?<!\*)\*(?!\*)"
    r"|\((?:smil|laugh|chuckl|grin|sigh|wink|nod|paus|giggl|blush|wav)\w*[^)]{0,40}\)",
    re.I,
)

_BEFORE_VOICE = (
    "You are Tantra, a helpful voice assistant. The user speaks and hears your answers, so answer in one to three "
    "short sentences of plain words, without lists, code or Markdown."
)


@dataclass(frozen=True)
class Config:
    layout: str
    system: str | None
    """None: the chat template's own (SmolLM2: "You are a helpful AI assistant named SmolLM, ...")."""
    voice_system: str
    sampling: SamplingOptions


CONFIGS = {
    "before": Config("inline", None, _BEFORE_VOICE, SamplingOptions(0.7, 50, 0.9, 1.1)),
    "after": Config(LAYOUT, DEFAULT_SYSTEM, VOICE_SYSTEM, SamplingOptions()),
}


def _images(folder: Path) -> dict[str, Path]:
    """The benchmark's pictures: scikit-image's photographs, and signs drawn here for the text reader."""
    from PIL import Image, ImageDraw, ImageFont

    photos = Path(__import__("skimage").__file__).parent / "data"
    paths = {}
    for name, source in IMAGES.items():
        path = folder / name
        if (photos / source).is_file():
            Image.open(photos / source).convert("RGB").save(path)
        else:  # a sign: dark letters on a light board
            image = Image.new("RGB", (640, 240), (245, 240, 225))
            draw = ImageDraw.Draw(image)
            font = ImageFont.load_default(size=64)
            width = draw.textlength(source, font=font)
            draw.text(((640 - width) / 2, 80), source, fill=(20, 20, 20), font=font)
            image.save(path)
        paths[name] = path
    return paths


class _Bench:
    def __init__(self, settings: Settings, folder: Path, say, model: str | None = None) -> None:
        from core.vision.describer import ImageDescriber

        self.loader, self.model = model_loader(settings), model
        self.folder, self.say = folder, say
        self.describer = ImageDescriber(self.loader)
        self.images = _images(folder)
        self._records: dict[str, object] = {}

    def record(self, name: str):
        """An image as the chat keeps it (described once by the local models)."""
        from core.language.chat_images import image_record

        if name not in self._records:
            self._records[name] = image_record(self.describer, self.images[name])
        return self._records[name]

    def session(self, loaded: dict, config: Config, item: Item, index: int, journal=None):
        from core.language.chat_session import ChatSession
        from core.memory.journal import Journal

        options = replace(config.sampling, max_tokens=ANSWER_TOKENS, seed=index)
        system = config.voice_system if item.category == "voice" else config.system
        return ChatSession.of(loaded, options, system, journal=journal or Journal(say=self.say), layout=config.layout)

    def run(self, config: Config, spiking: bool, chosen: list[Item]) -> list[dict]:
        loaded = self.loader.load_spikingbrain(spiking=spiking, model=self.model, remote=False)
        journal = self._memory_journal(loaded, config, [i for i in chosen if i.remembered], spiking)
        rows = []
        for index, item in enumerate(chosen):
            session = self.session(loaded, config, item, index, journal if item.remembered else None)
            for earlier in item.told:
                _answer(session, earlier, replace(session.options, max_tokens=EARLIER_TOKENS))
            if item.image:
                session.attach(self.record(item.image))
            if item.remembered:
                journal.new_conversation()
            reply = _answer(session, item.question, session.options, item.context)
            if item.remembered:
                journal.retract_last()  # every question finds the same memory
            rows.append(_row(item, reply, session, self._records.get(item.image)))
        return rows

    def _memory_journal(self, loaded: dict, config: Config, chosen: list[Item], spiking: bool):
        """A journal on a database of its own in which each fact of ``chosen`` was told in a conversation of its
        own, and answered by the model."""
        from core.memory.chat_log import ChatLog
        from core.memory.episodes import EpisodicMemory
        from core.memory.journal import Journal
        from core.memory.log_db import open_database

        if not chosen:
            return None
        embedder = self.loader.load_embedder()
        database = open_database(self.folder / f"memory-{config.layout}-{spiking}-{time.monotonic_ns()}.db")
        journal = Journal(ChatLog(database), EpisodicMemory(database, lambda: embedder), say=self.say)
        for index, item in enumerate(chosen):
            journal.new_conversation()
            session = self.session(loaded, config, item, index, journal)
            _answer(session, item.remembered, replace(session.options, max_tokens=EARLIER_TOKENS))
        return journal


def _answer(session, text: str, options: SamplingOptions, context: str = "") -> str:
    kept, session.options = session.options, options
    try:
        return "".join(session.ask(text, "argument", context)).strip()
    finally:
        session.options = kept


def _row(item: Item, reply: str, session, image) -> dict:
    last = session.last
    row = {"id": item.id, "category": item.category, "right": bool(re.search(item.accept, reply, re.I)),
           "reply": reply, "prompt_tokens": last.prompt_tokens, "first_token_seconds": last.first_token_seconds,
           "stage_direction": bool(STAGE_DIRECTION.search(reply)), "sentences": _sentences(reply)}  # fmt: skip
    if item.told:
        row["turns_back"] = turns_back(item)
    if image is not None:
        row["label_right"] = bool(re.search(item.label, image.facts, re.I))
    if item.remembered:
        row["recalled"] = [fact for r in session.journal.recalled for fact in r.facts]
    return row


def _sentences(reply: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+", reply) if s.strip()])


def _share(rows: Iterable[dict]) -> float | None:
    rows = list(rows)
    return round(sum(r["right"] for r in rows) / len(rows), 3) if rows else None


def summary(rows: list[dict]) -> dict:
    """Accuracy per category (and per distance, and where the image's label was right), with what it cost."""
    result = {"accuracy": {c: _share(r for r in rows if r["category"] == c) for c in CATEGORIES}}
    result["accuracy"]["all"] = _share(rows)
    result["accuracy"]["image_label_right"] = _share(r for r in rows if r.get("label_right"))
    for back in sorted({r["turns_back"] for r in rows if "turns_back" in r}):
        result["accuracy"][f"conversation_{back}_turns_back"] = _share(r for r in rows if r.get("turns_back") == back)
    result["items"] = len(rows)
    result["prompt_tokens_mean"] = round(statistics.fmean(r["prompt_tokens"] for r in rows), 1) if rows else None
    result["first_token_seconds_p50"] = round(statistics.median(r["first_token_seconds"] for r in rows), 3) \
        if rows else None  # fmt: skip
    result["stage_directions"] = sum(r["stage_direction"] for r in rows)
    voice = [r["sentences"] for r in rows if r["category"] == "voice"]
    result["voice_sentences_mean"] = round(statistics.fmean(voice), 2) if voice else None
    return result


def bench_answers(settings: Settings, split: str = "report", configs: tuple[str, ...] = ("before", "after"),
                  modes: tuple[str, ...] = ("spiking", "plain"), categories: tuple[str, ...] = CATEGORIES,
                  replies: bool = False, model: str | None = None) -> dict:  # fmt: skip
    """Every configuration in ``configs`` on the items of ``split`` (report, tune or all), for each of ``modes``,
    answered by ``model`` (a name or directory, as ``tantra chat -m`` takes; the default model when None)."""
    chosen = [i for i in items() if i.category in categories and (split == "all" or i.tune == (split == "tune"))]

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        bench = _Bench(settings, Path(folder), say, model)
        for name in configs:
            config = CONFIGS[name]
            for mode in modes:
                start = time.perf_counter()
                rows = bench.run(config, mode == "spiking", chosen)
                results.setdefault(name, {})[mode] = {**summary(rows), "seconds": round(time.perf_counter() - start)}
                if replies:
                    results[name][mode]["replies"] = rows
                say(f"answers: {name} {mode}: {results[name][mode]['accuracy']}")
    return {
        "split": split, "items": len(chosen), "model": model or "default",
        "configs": {name: {"layout": c.layout, "system": c.system, "sampling": c.sampling.__dict__}
                    for name, c in CONFIGS.items() if name in configs},
        "results": results,
    }  # fmt: skip
