"""A chat with SpikingBrain, independent of any terminal: turns, sampling settings, the prompt, streamed replies, the
log, statistics.

The REPL (``tantra_cli/repl.py``) draws it; one-shot ``tantra chat`` uses ``ask`` alone. Its slash commands live in
``core.language.chat_commands``; ``command`` runs one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

from config.errors import BadInput, TantraError
from core.language import chat_commands
from core.language.chat_commands import Ask
from core.language.chat_images import image_paths_in, image_record
from core.language.chat_model import ChatModel, PromptTooLong, TokenCounts
from core.language.conversation import Conversation, PromptCache, SamplingOptions
from core.language.grounding import LAYOUT, Grounds, told_before, turn_messages
from core.language.reply_filter import without_stage_directions
from core.memory.chat_log import ExchangeStart, ImageRecord
from core.memory.episodes import Recollection
from core.memory.journal import Journal
from core.runtime.fallback import GiveWay
from core.runtime.status import say


@dataclass(frozen=True)
class ReplyStats:
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    first_token_seconds: float
    """Until the first token: reading the prompt, which grows with the conversation."""
    interrupted: bool

    @property
    def tokens_per_second(self) -> float | None:
        """Decoding speed: the tokens after the first over the time after the first."""
        decoding = self.seconds - self.first_token_seconds
        if self.completion_tokens < 2 or decoding <= 0:
            return None
        return round((self.completion_tokens - 1) / decoding, 2)


class TurnMark(NamedTuple):
    messages: int
    exchange: int | None
    pending_images: tuple[ImageRecord, ...]


class ChatSession:
    def __init__(self, model: ChatModel, options: SamplingOptions, system: str | None = None, *, describer=None,
                 journal: Journal | None = None, fallback: Callable[[], dict] | None = None,
                 warn: Callable[[str], None] = say, layout: str = LAYOUT) -> None:  # fmt: skip
        """``model`` answers: SpikingBrain here or a server's model, as a ``core.language.chat_model.ChatModel``.
        ``describer`` (a ``core.vision.describer.ImageDescriber``) lets messages carry images: the model reads what
        the image shows as text (labels and any text in it), since SpikingBrain itself sees no pixels.
        ``journal`` logs every exchange and recalls episodes of other conversations (none: nothing is kept).

        ``fallback`` gives the local model (``load_spikingbrain``'s dict) that answers when a server fails before
        its first word, for that turn and the rest of the session; ``warn`` says so. ``layout``: where a turn's
        facts go in the prompt (``core.language.grounding``; other layouts are for benchmarks)."""
        self.model, self.options, self.layout = model, options, layout
        local = (lambda: fallback()["chat"]) if fallback is not None else None
        self.fallback = GiveWay(local, warn, "the local language model answers instead")
        self.conversation = Conversation(system or None)
        self.last: ReplyStats | None = None
        self.last_counts = TokenCounts()  # the last reply's, for /stats
        self.describer = describer
        self.journal = journal or Journal()
        self.pending_images: list[ImageRecord] = []  # from /image, for the next message (``attach``)
        self.prompt_cache = PromptCache()  # each reply runs only the prompt tokens the last one did not
        self.on_image: Callable[[str], None] | None = None  # told what each image in a message shows (the REPL says it)

    @classmethod
    def of(cls, loaded: dict, options: SamplingOptions, system: str | None = None, **settings) -> ChatSession:
        """A chat with the model ``ModelLoader.load_spikingbrain`` gave (its dict)."""
        return cls(loaded["chat"], options, system, **settings)

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def spiking(self) -> bool:
        """Whether the model answers with spike coding (a server's model: as the server says, else not)."""
        return bool(self.model.spiking)

    def image_record(self, path: Path) -> ImageRecord:
        if self.describer is None:
            raise BadInput("images are not available in this chat")
        return image_record(self.describer, path)

    def attach(self, image: ImageRecord) -> None:
        """``image`` goes with the next message."""
        self.pending_images.append(image)

    def clear(self) -> None:
        """A new conversation: no turns (the system prompt stays), no last reply, a new one in the log."""
        self.conversation.messages.clear()
        self.last, self.last_counts = None, TokenCounts()
        self.journal.new_conversation()

    def continue_from(self, exchanges) -> None:
        """Take up a logged conversation (``core.memory.chat_log.Exchange``s, in order): its turns are the context
        again."""
        if exchanges:
            self.journal.conversation_id = exchanges[0].conversation_id
            self.conversation.system = self.conversation.system or exchanges[-1].system
        for exchange in exchanges:
            if exchange.error is None:
                images = Grounds(images=tuple(image.facts for image in exchange.images))
                self.conversation.messages += turn_messages(exchange.prompt, images, self.layout)
                self.conversation.messages.append({"role": "assistant", "content": exchange.reply})

    # ---- talking --------------------------------------------------------------------------------------------------

    def ask(self, text: str, source: str = "typed", context: str = "") -> Iterator[str]:
        """The reply to ``text``, streamed. Stopped early (Ctrl-C), what was said so far stays in the conversation.
        ``source`` (typed at the REPL, an argument, stdin or voice) is logged with it; ``context`` is piped text the
        question is about (logged before it, as the user gave both).

        The model's first piece is awaited here: a model that fails before it (a server that cannot be reached)
        leaves no turn behind, and with a ``fallback`` the local model answers instead."""
        text = text.strip()
        if not text:
            raise BadInput("the prompt is empty")
        context = context.strip()
        found = [self.image_record(path) for path in image_paths_in(text)]
        if self.on_image is not None:
            for image in found:
                self.on_image(image.facts)
        images, self.pending_images = self.pending_images + found, []
        recalled = self.journal.recall(text)
        while True:
            reply = self._reply(text, context, source, images, recalled)
            if reply is not None:
                yield from reply
                return

    def _start(self, text: str, context: str, source: str, images: list[ImageRecord],
               recalled: list[Recollection]) -> ExchangeStart:  # fmt: skip
        """What the log keeps of a turn: the prompt as the user gave it (piped text before the question)."""
        prompt = f"{context}\n\n{text}" if context else text
        return ExchangeStart(self.model_name, self.spiking, self.conversation.system, asdict(self.options), prompt,
                             source, tuple(images), tuple(r.exchange.id for r in recalled))  # fmt: skip

    def _reply(self, text: str, context: str, source: str, images: list[ImageRecord],
               recalled: list[Recollection]) -> Iterator[str] | None:  # fmt: skip
        """The model's reply, once its first piece has come; None when a server failed before it (said in one line)
        and the local model now answers, this turn and the next ones. Without a ``fallback``, the failure is raised.
        A prompt too long for the context first drops the recollections it holds; still too long, it is refused,
        and logged, but not kept in the conversation."""
        messages = self.conversation.messages
        before = len(messages)
        while True:
            self._add_turn(text, context, images, recalled)
            counts = self.last_counts = TokenCounts()
            started = time.perf_counter()
            pieces = self.model.stream(self.conversation.head + messages, self.options, counts, self.prompt_cache)
            try:
                first = next(pieces, None)
                break
            except PromptTooLong as problem:
                del messages[before:]  # not kept in the conversation, but in the log
                if recalled:
                    recalled = []  # the recollections give way, and the turn is tried again
                    continue
                problem = f"{problem}: shorten it"
                start = self._start(text, context, source, images, recalled)
                self.journal.begin(start).finish("", prompt_tokens=counts.prompt_tokens, interrupted=False,
                                                 error=problem)  # fmt: skip
                raise PromptTooLong(problem) from None
            except BadInput:
                del messages[before:]  # refused (a bad setting): another model is no better
                raise
            except TantraError as failure:
                del messages[before:]
                if self.fallback.engine is not None:
                    raise  # the local model is the last resort
                self.model, self.prompt_cache = self.fallback.after(failure), PromptCache()
                return None
            except BaseException:  # Ctrl-C while waiting for the first word: the turn never happened
                del messages[before:]
                raise

        def reply() -> Iterator[str]:
            try:
                if first is not None:
                    yield first
                yield from pieces
            finally:
                pieces.close()  # the reader stopped: so does the model (a server closes the connection)

        start = self._start(text, context, source, images, recalled)
        return self._stream(start, reply(), lambda: (counts.prompt_tokens, counts.completion_tokens), started)

    def _stream(self, start: ExchangeStart, pieces: Iterator[str], counts: Callable[[], tuple[int, int]],
                started: float) -> Iterator[str]:  # fmt: skip
        """``pieces`` passed on, logged as they come; when they end (or the reader stops), the reply joins the
        conversation and the log, and ``last`` holds its statistics (``counts``: prompt and reply tokens).
        ``started``: when the request began (the first piece has come already)."""
        messages = self.conversation.messages
        entry = self.journal.begin(start)
        pieces = without_stage_directions(pieces)  # "*takes a sip of coffee*" is neither said nor kept
        said: list[str] = []
        first_token = 0.0
        interrupted = True
        try:
            for piece in pieces:
                first_token = first_token or time.perf_counter() - started
                said.append(piece)
                entry.progress(said)
                yield piece
            interrupted = False
        finally:
            reply = "".join(said).strip()
            messages.append({"role": "assistant", "content": reply})
            seconds = time.perf_counter() - started
            prompt_tokens, completion_tokens = counts()
            self.last = ReplyStats(prompt_tokens, completion_tokens, seconds, first_token or seconds, interrupted)
            entry.finish(reply, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                         seconds=round(seconds, 3), first_token_seconds=round(first_token or seconds, 3),
                         interrupted=interrupted)  # fmt: skip

    def _add_turn(self, text: str, context: str, images: list[ImageRecord], recalled: list[Recollection]) -> None:
        """The user's turn added to the conversation, its facts placed as ``core.language.grounding`` lays them
        out."""
        grounds = Grounds(told_before(self.conversation.messages, text),
                          tuple(fact for r in recalled for fact in r.facts),
                          tuple(image.facts for image in images), context)  # fmt: skip
        self.conversation.messages += turn_messages(text, grounds, self.layout)

    def keep_heard(self, heard: str) -> None:
        """The last reply was cut by the user speaking: it is remembered, and logged, as far as it was heard."""
        self.conversation.messages[-1]["content"] = heard
        self.journal.amend_last(heard)

    def turn_mark(self) -> TurnMark:
        """Where the conversation stands now; ``retract`` goes back to it."""
        return TurnMark(len(self.conversation.messages), self.journal.last_exchange, tuple(self.pending_images))

    def retract(self, mark: TurnMark) -> None:
        """What was asked since ``mark`` never happened (a spoken draft the user talked over): gone from the
        conversation, the log and memory, and the images it took wait for the next message again."""
        messages_before, exchange_before, pending = mark
        del self.conversation.messages[messages_before:]
        self.pending_images = list(pending)
        if self.journal.last_exchange != exchange_before:
            self.journal.retract_last()
        self.journal.last_exchange = exchange_before

    def read_ahead(self, images: Sequence[ImageRecord] = ()) -> None:
        """Read into the prompt cache what the next turn's prompt will begin with, before its words are known: the
        conversation, and the note its facts will make without a question (what the user has told, the images
        attached and ``images``). The voice loop calls it as the user starts to speak: a question about a picture
        then waits for the picture's note no more. Where the turn's note comes out otherwise (a memory recalled),
        the cache still holds the tokens before the first that differs."""
        grounds = Grounds(told_before(self.conversation.messages, ""),
                          images=tuple(image.facts for image in (*self.pending_images, *images)))  # fmt: skip
        note = turn_messages("", grounds, self.layout)[:-1]  # the user's message is the part not known yet
        self.model.read_ahead(self.conversation.head + self.conversation.messages + note, self.prompt_cache)

    def warm_up(self) -> None:
        """Run the model once outside the conversation: the first real reply then does not pay for the first run
        of every kernel (the voice loop calls it while the user is still speaking)."""
        self.model.warm_up()

    # ---- slash commands -------------------------------------------------------------------------------------------

    def command(self, line: str) -> str | Ask:
        """Run one ``/command`` (``core.language.chat_commands``); returns what to show, or an ``Ask``: text to send
        now, as if typed. Unknown commands and bad arguments raise BadInput."""
        return chat_commands.run(self, line)
