"""``tantra bench chat --model M --text FILE``: a language model's perplexity on a text, spiking and plain, on the
text's first 1,024 tokens: how a converted model is checked against the one it came from. For a store model that
comes from a GGUF, where ``llama_cpp`` is importable, llama.cpp's perplexity on the same GGUF and the same token ids
is added in the same run (every position scored, as here; ``llama-perplexity`` scores the second half of each
window)."""

from __future__ import annotations

from pathlib import Path

from config.errors import BadInput
from config.settings import Settings
from tantra_benchmarks.chat import perplexity as perplexity_of
from tantra_benchmarks.common import PROSE, machine

TOKENS = 1024


def bench_perplexity(settings: Settings, model: str | None, text: Path | None, tokens: int = TOKENS) -> dict:
    import torch

    from config.model_config import MODEL_CONFIG
    from core.language.language_model import load_spikingbrain_dir
    from core.language.loading import named_model
    from core.runtime import model_store

    source = named_model(settings, model or MODEL_CONFIG.language.default)
    root = source if isinstance(source, Path) else model_store.ensure(source, settings)
    text = text or PROSE
    try:
        words = text.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"{text}: cannot be read as UTF-8 text ({error})") from None
    result = {"machine": machine(settings), "model": getattr(source, "name", str(source)), "text": str(text)}
    perplexity: dict = {}
    for mode, spiking in (("spiking", True), ("plain", False)):
        loaded = load_spikingbrain_dir(root, spiking=spiking)
        extra = loaded["model"].config.extra
        bos = [extra["bos_token_id"]] if extra.get("add_bos_token") and extra.get("bos_token_id", -1) >= 0 else []
        ids = (bos + loaded["tokenizer"].encode(words))[: min(tokens, loaded["model"].config.block_size)]
        if len(ids) < 2:
            raise BadInput(f"{text}: too little text to measure ({len(ids)} tokens)")
        perplexity[mode] = round(perplexity_of(loaded["model"], torch.tensor([ids]))[0], 3)
        perplexity["tokens"] = len(ids)
        del loaded
    theirs = _llama_cpp(source, settings, ids, words)
    if theirs:
        perplexity.update(theirs, plain_over_llama_cpp=round(perplexity["plain"] / theirs["llama_cpp"], 4),
                          spiking_over_llama_cpp=round(perplexity["spiking"] / theirs["llama_cpp"], 4))  # fmt: skip
    return {**result, "perplexity": perplexity}


def _llama_cpp(source, settings: Settings, ids: list[int], words: str) -> dict:
    """llama.cpp's perplexity on the same ids, for a store model that comes from a GGUF, where it is importable."""
    from tantra_benchmarks import llama_cpp

    if not llama_cpp.available():
        return {}
    with llama_cpp.source_gguf(source, settings) as gguf:
        if gguf is None:
            return {}
        theirs = llama_cpp.perplexity(gguf, ids, settings.threads or 2)["perplexity"]
        same_split = llama_cpp.tokenize(gguf, words)[: len(ids)] == ids
    return {"llama_cpp": theirs, "llama_cpp_same_tokens": same_split}
