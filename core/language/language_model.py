"""SpikingBrain in use: loading converted weights, the chat template, and sampling tokens on a decoding thread of
their own (``core.language.chat_model`` makes them text)."""

from __future__ import annotations

import json
import queue
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from config.errors import TantraError
from core.language.conversation import PromptCache, SamplingOptions
from core.language.spikingbrain_convert import CONFIG, INT8_WEIGHTS, TOKENIZER, WEIGHTS
from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM
from core.runtime.decoding_pause import wait_while_paused


class ChatTokenizer:
    """A ``tokenizers`` BPE plus the model's own chat template (Jinja, rendered in a sandbox)."""

    def __init__(self, path: Path, chat_template: str, eos_token_id: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.chat_template = None
        if chat_template:  # compiled once: a conversation renders it every turn
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            self.chat_template = environment.from_string(chat_template)
        self.eos_token_id = eos_token_id
        # A base model has no end-of-turn token: it would go on to write the user's next line itself.
        self.stop_strings: tuple[str, ...] = () if self.chat_template else ("\nUser:",)
        # A reply ends at the template's end-of-turn token as well as at end-of-text.
        ends = [eos_token_id] + [self.tokenizer.token_to_id(t) for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>",
                                                                     "<end_of_turn>")]
        self.stop_token_ids = {token for token in ends if token is not None and token >= 0}

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        if self.chat_template is None:  # a base model: plain text turns
            turns = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
            return turns + ("Assistant:" if add_generation_prompt else "")
        return self.chat_template.render(messages=messages, add_generation_prompt=add_generation_prompt)


_SAFETENSORS_DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I8": torch.int8, "U8": torch.uint8,
    "I64": torch.int64,
}  # fmt: skip


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file read straight into fresh, 64-byte-aligned tensors: one copy in memory, never two.

    ``safetensors.torch.load_file`` hands out tensors at the file's 8-byte alignment, which the INT8 kernel cannot
    read, and copying them afterwards doubles the peak memory. The format is an 8-byte header length, a JSON
    header (name -> dtype, shape, byte range), then raw bytes: nothing to unpickle.
    """
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError("the file is empty or cut short")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > 100_000_000:
            raise ValueError(f"not a safetensors file (its header claims {header_size} bytes)")
        header = json.loads(handle.read(header_size))
        start = 8 + header_size
        tensors = {}
        for name, entry in sorted(header.items(), key=lambda item: item[1].get("data_offsets", [0])[0]):
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            buffer = torch.empty(end - begin, dtype=torch.uint8)
            handle.seek(start + begin)
            if handle.readinto(buffer.numpy()) != end - begin:
                raise ValueError(f"the file is truncated inside {name}")
            tensors[name] = buffer.view(_SAFETENSORS_DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return tensors


def load_spikingbrain_dir(path: Path, device: str = "cpu", spiking: bool = True) -> dict:
    """``{"model": SpikingBrainForCausalLM, "tokenizer": ChatTokenizer}`` from a converted directory.

    Spiking loads the INT8 inference form only; spiking off loads the full-precision reference weights.
    """
    weights = INT8_WEIGHTS if spiking else WEIGHTS
    try:
        config = SpikingBrainConfig(**json.loads((path / CONFIG).read_text()))
        config.spiking = spiking
        model = SpikingBrainForCausalLM.from_state_dict(config, read_safetensors(path / weights), int8=spiking)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
        raise TantraError(f"{path} does not hold a usable SpikingBrain model ({error}); pull it again") from None
    model.to(device)
    extra = config.extra
    tokenizer = ChatTokenizer(path / TOKENIZER, extra.get("chat_template", ""), extra.get("eos_token_id", -1))
    return {"model": model, "tokenizer": tokenizer}


def _sample(logits: torch.Tensor, history: list[int], options: SamplingOptions, generator) -> int:
    logits = logits.float().clone()  # (vocab,)
    if options.repetition_penalty != 1.0 and history:
        seen = torch.tensor(sorted(set(history)), dtype=torch.long)
        values = logits[seen]
        logits[seen] = torch.where(values > 0, values / options.repetition_penalty, values * options.repetition_penalty)
    if options.temperature <= 0:
        return int(logits.argmax())
    logits = logits / options.temperature
    if options.top_k > 0:
        kth = torch.topk(logits, min(options.top_k, logits.numel())).values[-1]
        logits[logits < kth] = -float("inf")
    probs = torch.softmax(logits, dim=-1)
    if 0 < options.top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(0) - sorted_probs > options.top_p  # keep the smallest set reaching top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))


_decoder_lock = threading.Lock()
_decoder: ThreadPoolExecutor | None = None


def _decoding_thread() -> ThreadPoolExecutor:
    """The thread every decoding step runs on, with one torch thread of its own.

    One token at a time is bound by memory, not arithmetic: a second CPU thread gains nothing (measured), and on a
    busy machine (a voice synthesizing the last sentence meanwhile) OpenMP threads that wait for each other make
    every step dozens of times slower. A thread of its own gives decoding one thread without switching torch's
    setting back and forth around every reply, which would slow anything else running torch at the same time.
    """
    global _decoder
    with _decoder_lock:
        if _decoder is None:
            threads = torch.get_num_threads()
            decoder = ThreadPoolExecutor(1, thread_name_prefix="tantra-decode")
            decoder.submit(_use_one_torch_thread).result()
            # torch gives each new thread the count set last: threads started from now on get the process's again.
            torch.set_num_threads(threads)
            _decoder = decoder
        return _decoder


def _use_one_torch_thread() -> None:
    torch.set_num_threads(1)
    torch.get_num_threads()  # torch settles a thread's count at its first use: settle it now, while it is 1


def read_into_cache(model: SpikingBrainForCausalLM, prompt_ids: list[int], cache: PromptCache) -> None:
    """Run ``prompt_ids`` into ``cache`` ahead of a prompt that will begin with them
    (``core.language.chat_model.LocalChatModel.read_ahead``): that prompt then runs only the tokens after them."""
    cache.keep(prompt_ids, _read_prompt(model, prompt_ids, cache).past_key_values)


def _read_prompt(model: SpikingBrainForCausalLM, prompt_ids: list[int], cache: PromptCache | None):
    """The model's output for ``prompt_ids``, run from what ``cache`` already holds of them. The cache is taken
    until the caller keeps it again; after a failure it is emptied and freed here."""
    device = next(model.parameters()).device
    kv, kept = cache.take(prompt_ids) if cache is not None else (None, 0)
    try:
        with torch.no_grad():
            return model(torch.tensor([prompt_ids[kept:]], device=device), kv, last_only=True)
    except BaseException:
        if cache is not None:
            cache.keep([], None)
        raise


_DONE = object()


def generate_tokens(
    model: SpikingBrainForCausalLM,
    prompt_ids: list[int],
    options: SamplingOptions,
    stop_token_ids: set[int] = frozenset(),
    cache: PromptCache | None = None,
) -> Iterator[int]:
    """Token ids as they are sampled. The prompt is processed once, on the caller's threads (compute-bound); then
    the decoding thread samples one token at a time with the KV cache and hands each over as it comes, running
    ahead of a slow reader (a voice speaking the last sentence) until the reader stops listening. With ``cache``,
    the part of the prompt that the conversation's last turn already ran is not run again."""
    context = model.config.block_size
    if len(prompt_ids) + 1 > context:
        raise TantraError(f"the prompt is {len(prompt_ids)} tokens; the model's context holds {context}")
    generator = torch.Generator().manual_seed(options.seed) if options.seed is not None else None
    device = next(model.parameters()).device
    output = _read_prompt(model, prompt_ids, cache)
    tokens: queue.SimpleQueue = queue.SimpleQueue()
    stopped = threading.Event()

    @torch.no_grad()  # grad mode is per thread too
    def decode(output) -> None:
        history = list(prompt_ids)  # every token the KV cache holds
        # The repetition penalty counts the reply's own tokens only. Over the prompt too (as transformers does) it
        # pushes the model away from the very words of the facts it was given: on the tuning split of ``tantra
        # bench answers`` 57% of grounded questions were answered right that way, 71% this way.
        said: list[int] = []
        try:
            for _ in range(min(options.max_tokens, context - len(prompt_ids))):
                token = _sample(output.logits[0, -1], said, options, generator)
                if token in stop_token_ids or stopped.is_set():
                    break
                tokens.put(token)
                wait_while_paused()  # the voice is making a reply's first audio (``core.runtime.decoding_pause``)
                output = model(torch.tensor([[token]], device=device), output.past_key_values)
                history.append(token)
                said.append(token)
        except BaseException as error:  # noqa: BLE001 - handed to the reader, which raises it
            tokens.put(error)
            output = None
        if cache is not None:
            cache.keep(history, output.past_key_values if output is not None else None)
        tokens.put(_DONE)

    _decoding_thread().submit(decode, output)
    try:
        while (item := tokens.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped.set()  # a reader that stops early (a stop string, Ctrl-C) stops the decoding within one step
