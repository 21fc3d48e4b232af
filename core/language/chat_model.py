"""The seam between a conversation and the model that answers it: ``ChatModel``, which a model in this process
(``LocalChatModel``) and a model on a server (``core.language.remote.RemoteChatModel``) both are.

A chat (``core.language.chat_session``), ``tantra serve`` and the fakes in the tests speak to either the same way:
OpenAI-style messages in, text pieces out, token counts filled in as they come. So none of them asks which kind it
has. No torch here: a chat with a server's model starts without it, and torch is imported only when a local model
first runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from config.errors import BadInput
from core.language.conversation import Conversation, PromptCache, SamplingOptions
from core.language.text_pieces import text_pieces


class PromptTooLong(BadInput):
    """The conversation does not fit the model's context, even with its oldest turns left out."""


@dataclass
class TokenCounts:
    """A reply's token counts, filled in as it streams: the model's own where it gives them, else estimated."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False
    """True when the counts are the model's own (a local model's, or a server's usage chunk); False: estimated."""
    token_ids: list[int] = field(default_factory=list)
    """The prompt's and the reply's token ids, where the model is here (what ``/stats`` runs again for spikes)."""
    limit: int = 0
    """The most tokens the reply could have had (``max_tokens``, or the room left in the context); 0: unknown."""

    @property
    def cut_short(self) -> bool:
        """Whether the reply ended because it reached ``limit`` (OpenAI's finish reason "length")."""
        return bool(self.limit) and self.completion_tokens >= self.limit


class ChatModel(Protocol):
    name: str
    """What the model is called: in the log, ``/model``, the server's ``/models``."""
    spiking: bool
    where: str
    """Where it runs, for a person: "" here, "the language model server at http://gpu-box:8000/v1" on a server."""

    def stream(self, messages: list[dict], options: SamplingOptions, counts: TokenCounts,
               cache: PromptCache | None = None, truncate: bool = True) -> Iterator[str]:  # fmt: skip
        """The reply to ``messages`` (OpenAI-style, a system message first where there is one), piece by piece.
        ``truncate``: the oldest exchanges give way when they do not fit, else the messages go whole.
        ``PromptTooLong`` (at the first piece) when what must go does not fit. ``options.max_tokens`` 0: up to the
        end of the context. ``cache``: the conversation's ``PromptCache``. Closing the generator stops it."""

    def read_ahead(self, messages: list[dict], cache: PromptCache) -> None:
        """Read into ``cache`` what the prompt of ``messages`` and a user's message still unknown will begin with,
        so that the reply to it reads only the rest. A server reads its prompts itself: nothing to do there."""

    def describe(self) -> str:
        """What ``/model`` shows: the model's shape, size and coding, or where it is served."""

    def stats(self, counts: TokenCounts) -> list[str]:
        """What ``/stats`` adds about the last reply (``counts``): spikes, or where the counts came from."""

    def warm_up(self) -> None:
        """Run every kernel once, off the conversation, so the first reply does not pay for it."""


class LocalChatModel:
    """SpikingBrain (or another network of ``core.models``) and its tokenizer, in this process."""

    where = ""

    def __init__(self, network, tokenizer, name: str) -> None:
        self.network, self.tokenizer, self.name = network, tokenizer, name

    def __repr__(self) -> str:
        return f"LocalChatModel({self.name!r})"

    @property
    def spiking(self) -> bool:
        return bool(self.network.config.spiking)

    @property
    def context(self) -> int:
        return self.network.config.block_size

    def prompt_ids(self, messages: list[dict], reserve: int) -> list[int]:
        """The prompt's token ids, the oldest exchanges left out until ``reserve`` tokens of reply fit."""
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
        turns = list(messages[1:] if system is not None else messages)
        return Conversation(system, turns).prompt_ids(self.tokenizer, self.context, reserve)

    def stream(self, messages: list[dict], options: SamplingOptions, counts: TokenCounts,
               cache: PromptCache | None = None, truncate: bool = True) -> Iterator[str]:  # fmt: skip
        if truncate:
            ids = self.prompt_ids(messages, options.max_tokens or 1)
        else:
            ids = self.tokenizer.encode(self.tokenizer.apply_chat_template(messages))
        counts.prompt_tokens, counts.completion_tokens, counts.reported, counts.token_ids = len(ids), 0, True, []
        room = self.context - len(ids)
        if room < 1:
            raise PromptTooLong(f"the prompt is {len(ids)} tokens; the model's context holds {self.context}")
        options = replace(options, max_tokens=min(options.max_tokens or room, room),
                          stop=options.stop + self.tokenizer.stop_strings)  # fmt: skip
        counts.limit = options.max_tokens
        generated: list[int] = []
        tokens = self._tokens(ids, options, cache)
        try:
            for piece in text_pieces(tokens, self.tokenizer, options.stop, generated):
                counts.completion_tokens = len(generated)
                yield piece
        finally:
            tokens.close()  # at a stop string too, or when the reader stops: the decoding stops within one step
            counts.completion_tokens, counts.token_ids = len(generated), ids + generated

    def read_ahead(self, messages: list[dict], cache: PromptCache) -> None:
        # The tokens the prompt has whatever the user says: those before the first that differ between two messages.
        one, other = (self.prompt_ids([*messages, {"role": "user", "content": word}], 1) for word in ("yes", "no"))
        same = next((i for i, (a, b) in enumerate(zip(one, other)) if a != b), min(len(one), len(other)))
        if same > 1:
            self._read(one[:same], cache)

    def _read(self, ids: list[int], cache: PromptCache) -> None:
        from core.language.language_model import read_into_cache  # torch: only once a local model answers

        read_into_cache(self.network, ids, cache)

    def _tokens(self, ids: list[int], options: SamplingOptions, cache: PromptCache | None) -> Iterator[int]:
        """The reply's token ids as the network samples them."""
        from core.language.language_model import generate_tokens  # torch: only once a local model answers

        return generate_tokens(self.network, ids, options, self.tokenizer.stop_token_ids, cache)

    def describe(self) -> str:
        import torch  # loaded with the model already

        config, weights = self.network.config, self.network.state_dict()
        # 4-bit weights are packed two to a byte
        parameters = sum(t.numel() * (2 if t.dtype == torch.uint8 else 1) for name, t in weights.items()
                         if not name.endswith("qscale"))  # fmt: skip
        device = next(iter(weights.values())).device
        if config.spiking:
            scales = f"one scale per {config.weight_group} inputs" if config.weight_group else "one scale per row"
            kept, layers = len(config.int8_projections), len(self.network.spiking_layers())
            finer = f"; {kept} of {layers} projections INT8, finer in the file" if kept else ""
            four_bit = f"4-bit weights (Q4_1: a scale and minimum per 32 inputs{finer}; INT8 embedding)"
            weights_form = f"INT8 weights with {scales}" if config.weight_bits == 8 else four_bit
            coding = f"spiking on (threshold mean|x|/{config.spike_k:g}), {weights_form}"
        else:
            coding = "spiking off (full-precision reference)"
        shape = f"{config.family} family, {config.n_layer} layers, {config.n_embd} wide"
        size = f"{parameters / 1e6:.0f}M parameters, context {config.block_size} tokens, on {device}"
        return f"{self.name}: {shape}, {size}\n{coding}"

    def stats(self, counts: TokenCounts) -> list[str]:
        if not self.spiking or not counts.completion_tokens or not counts.token_ids:
            return []
        import torch

        ids = torch.tensor([counts.token_ids[: self.context]])
        stats = self.network.spike_stats(ids, last_tokens=counts.completion_tokens)
        return [f"spikes: {stats.silent_share:.0%} of activations silent, {stats.mean_spikes:.2f} spikes per "
                f"activation, ternary-train sparsity {stats.ternary_sparsity:.1%}"]  # fmt: skip

    def warm_up(self) -> None:
        """Two tokens for a short prompt."""
        messages = [{"role": "user", "content": "Hello"}]
        for _ in self.stream(messages, SamplingOptions(max_tokens=2, seed=0), TokenCounts()):
            pass
