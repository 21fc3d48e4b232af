"""``tantra bench chat``: SpikingBrain's quality, firing, speed and memory, against itself without spikes and
against ``transformers``' stock model, all on the same weights and in one run."""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from config.model_config import MODEL_CONFIG, find_store_model
from config.settings import Settings
from core.language.loading import decoding_threads
from core.model_loader import ModelLoader
from core.runtime import model_store
from tantra_benchmarks.common import PROSE, TANTRA, machine, measure_child, prose_text, tantra_env

K_VALUES = (2.0, 3.0, 4.0, 6.0, 8.0)
PROMPT_TOKENS, DECODE_TOKENS = 200, 128


def perplexity(model, ids):
    """The perplexity of ``ids`` (1, T) under ``model``, and the model's logits for each next token."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        logits = model(ids).logits[0, :-1].float()
    return torch.exp(F.cross_entropy(logits, ids[0, 1:])).item(), logits


def _quality(model, ids, reference_logits) -> dict:
    """Perplexity of the text, and how often the next-token choice agrees with the reference's."""
    value, logits = perplexity(model, ids)
    agreement = (logits.argmax(-1) == reference_logits.argmax(-1)).float().mean().item()
    return {"perplexity": round(value, 3), "top1_agreement": round(agreement, 4)}


class _ProductTimer:
    """Time spent in a model's weight products while it decodes: the spiking projections (the compiled kernel's
    calls) and the INT8 output head. The rest of a decoding step is the per-token overhead: Python, dispatch,
    attention, norms."""

    def __init__(self, model) -> None:
        self.seconds, self.patched = 0.0, []
        kernels = {id(layer.kernel): layer.kernel for layer in model.spiking_layers() if layer.kernel is not None}
        head = getattr(model, "head_int8", None) or getattr(model, "embed_int8", None)
        for owner, name in [*((kernel, "spiking_linear") for kernel in kernels.values()), (head, "project")]:
            if owner is not None:
                self._wrap(owner, name)

    def _wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(owner, name, timed)
        self.patched.append((owner, name))

    def close(self) -> None:
        for owner, name in self.patched:
            delattr(owner, name)  # the class's method again


def _speed(model, vocab_size: int) -> dict:
    """Prompt and greedy decode speed with the KV cache, through the same calls for every model; for SpikingBrain
    decoding per projection, also the milliseconds of each step spent in its weight products and outside them (a
    native step is one call: there is no outside to time)."""
    import torch

    prompt = torch.randint(100, vocab_size - 100, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))
    native = getattr(model, "native_step", None) is not None
    kernel = hasattr(model, "spiking_layers") and any(layer.kernel for layer in model.spiking_layers())
    timer = _ProductTimer(model) if kernel and not native else None  # the split is the per-projection path's
    with torch.no_grad():
        model(prompt[:, :8])  # warm-up: first-call allocations out of the timing
        start = time.perf_counter()
        output = model(prompt)
        prefill = time.perf_counter() - start
        token = output.logits[:, -1:].argmax(-1)
        if timer is not None:
            timer.seconds = 0.0
        start = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            output = model(token, past_key_values=output.past_key_values)
            token = output.logits[:, -1:].argmax(-1)
        decode = time.perf_counter() - start
        silence = _decoding_silence(model, output, token) if native else None
    result = {
        "prompt_tokens_per_second": round(PROMPT_TOKENS / prefill, 1),
        "decode_tokens_per_second": round(DECODE_TOKENS / decode, 1),
    }
    if kernel:
        result["decoding"] = "native step" if native else "per projection"
    if silence:
        result["decode_silent_share"] = silence
    if timer is not None:
        timer.close()
        step, products = 1000 * decode / DECODE_TOKENS, 1000 * timer.seconds / DECODE_TOKENS
        result.update(decode_step_ms=round(step, 2), products_ms=round(products, 2),
                      overhead_ms=round(step - products, 2))  # fmt: skip
    return result


def _decoding_silence(model, output, token, tokens: int = 32) -> dict:
    """The share of zero spike counts in each kind of projection's inputs over ``tokens`` more greedy tokens (after
    the timing: counting costs a little)."""
    model.native_step.count_silence()
    for _ in range(tokens):
        output = model(token, past_key_values=output.past_key_values)
        token = output.logits[:, -1:].argmax(-1)
    silence = model.native_step.silence()
    model.native_step.count_silence(False)
    return silence


def _speed_per_projection(model, vocab_size: int) -> dict:
    """``_speed`` with the native step set aside: each projection a call of its own, the rest in PyTorch."""
    native_step, model.native_step = model.native_step, None
    try:
        return _speed(model, vocab_size)
    finally:
        model.native_step = native_step


def _llama_cpp_same_gguf(stored, settings: Settings, vocab_size: int) -> dict:
    """llama.cpp's speed on the very GGUF the default model was converted from, on as many threads."""
    from tantra_benchmarks import llama_cpp

    if not llama_cpp.available():
        return {"skipped": llama_cpp.MISSING}
    with llama_cpp.source_gguf(stored, settings) as gguf:
        if gguf is None:
            return {"skipped": f"{stored.name} does not come from a GGUF"}
        return {"file": stored.files[gguf.name][0].rsplit("/", 1)[-1],
                **llama_cpp.decode_speed(gguf, decoding_threads(settings), vocab_size)}  # fmt: skip


def _peak_rss(settings: Settings, *flags: str) -> int:
    # Without the log and memory: their embedder is measured by `tantra bench memory`, this is the language model.
    command = [*TANTRA, "chat", "--temperature", "0", "-n", "16", "--no-log", "--no-memory", *flags, "Say hello."]
    run = measure_child(command, env=tantra_env(settings))
    if run.code != 0:
        raise RuntimeError(f"tantra chat failed while measuring memory (exit {run.code})")
    return run.peak_rss_mb


def bench_chat(settings: Settings) -> dict:
    import torch

    from core.language.language_model import load_spikingbrain_dir, read_safetensors
    from core.language.spikingbrain_convert import WEIGHTS
    from core.models.spikingbrain_model import SpikingBrainForCausalLM
    from core.runtime.reference_models import stock_transformers_llama

    if settings.threads:
        torch.set_num_threads(settings.threads)
    stored = find_store_model(MODEL_CONFIG.language.default)
    root = model_store.ensure(stored, settings)
    reference = load_spikingbrain_dir(root, spiking=False)
    plain, tokenizer = reference["model"], reference["tokenizer"]
    spiking = load_spikingbrain_dir(root, spiking=True)["model"]
    loader = ModelLoader(MODEL_CONFIG, settings)
    loader.use_decoding_kernel(spiking)  # as tantra chat decodes
    default_k = spiking.config.spike_k
    text = prose_text()
    ids = torch.tensor([tokenizer.encode(text)])
    with torch.no_grad():
        reference_logits = plain(ids).logits[0, :-1]
    base = _quality(plain, ids, reference_logits)

    def row(model) -> dict:
        quality = _quality(model, ids, reference_logits)
        stats = model.spike_stats(ids, bitwise=True)
        return {
            **quality,
            "perplexity_increase_pct": round(100 * (quality["perplexity"] / base["perplexity"] - 1), 2),
            "silent_share": round(stats.silent_share, 4),
            "silent_block_share": round(stats.silent_block_share, 4),  # of 32 inputs: work a kernel could skip
            "mean_spikes_per_activation": round(stats.mean_spikes, 3),
            "ternary_sparsity": round(stats.ternary_sparsity, 4),
            "bitwise_sparsity": round(stats.bitwise_sparsity, 4),
            "bitwise_spikes_per_activation": round(stats.bitwise_spikes / max(stats.entries, 1), 3),
        }

    k_table = []
    for k in K_VALUES:
        k_table.append({"k": k, **row(spiking.set_spike_k(k))})
    spiking.set_spike_k(default_k)
    default = row(spiking)

    # The same spiking model with INT8 weights and one scale per output row instead of per 128 inputs.
    state = read_safetensors(root / WEIGHTS)
    per_row = SpikingBrainForCausalLM.from_state_dict(replace(spiking.config, weight_group=0, weight_bits=8),
                                                      state).freeze_int8()  # fmt: skip
    loader.use_decoding_kernel(per_row)
    row_scales = row(per_row)
    # And in the other weight form (--bits): INT8 where the store keeps the GGUF's own Q4_1 blocks, and back.
    bits = spiking.config.weight_bits
    other_bits, other = (8, "int8") if bits == 4 else (4, "4_bit")
    variant = SpikingBrainForCausalLM.from_state_dict(replace(spiking.config, weight_bits=other_bits), state)
    variant = variant.freeze_int8()
    loader.use_decoding_kernel(variant)
    variant_row = row(variant)
    stock = stock_transformers_llama(plain.config, state)
    with torch.no_grad():
        stock_difference = (stock(ids).logits[0, :-1].float() - reference_logits).abs().max().item()
    vocab = plain.config.vocab_size
    speed = {
        "prompt_tokens": PROMPT_TOKENS,
        "decode_tokens": DECODE_TOKENS,
        "decode_threads": decoding_threads(settings),
        "spikingbrain": _speed(spiking, vocab),
        "spikingbrain_per_projection": _speed_per_projection(spiking, vocab),
        "spikingbrain_row_scales": _speed(per_row, vocab),
        f"spikingbrain_{other}": _speed(variant, vocab),
        "spikingbrain_no_spiking": _speed(plain, vocab),
        "transformers": _speed(stock, vocab),
        "llama_cpp_same_gguf": _llama_cpp_same_gguf(stored, settings, vocab),
    }
    spiking_kernel = next((layer.kernel.path.name for layer in spiking.spiking_layers() if layer.kernel), None)
    del stock, per_row, variant, state, plain, spiking
    decode = speed["spikingbrain"]["decode_tokens_per_second"]
    speed["decode_speedup_vs_transformers"] = round(decode / speed["transformers"]["decode_tokens_per_second"], 2)
    if "decode_tokens_per_second" in speed["llama_cpp_same_gguf"]:
        llama_cpp_decode = speed["llama_cpp_same_gguf"]["decode_tokens_per_second"]
        speed["decode_ratio_vs_llama_cpp"] = round(decode / llama_cpp_decode, 2)
        variant_decode = speed[f"spikingbrain_{other}"]["decode_tokens_per_second"]
        speed[f"decode_ratio_{other}_vs_llama_cpp"] = round(variant_decode / llama_cpp_decode, 2)
    # What the process holds before any model: Python, torch and the CLI's libraries.
    runtime = measure_child([sys.executable, "-c", "import torch, tokenizers, jinja2, rich, typer"]).peak_rss_mb
    spiking_peak = _peak_rss(settings)
    memory = {
        "spiking_peak_rss_mb": spiking_peak, "no_spiking_peak_rss_mb": _peak_rss(settings, "--no-spiking"),
        "runtime_rss_mb": runtime, "spiking_lm_resident_mb": spiking_peak - runtime,
    }  # fmt: skip
    return {
        "machine": machine(settings),
        "model": stored.name,
        "threads": torch.get_num_threads(),
        "decoding_kernel": spiking_kernel,
        "text": {"file": PROSE.name, "words": len(text.split()), "tokens": ids.shape[1]},
        "reference": {**base, "transformers_max_logit_difference": round(stock_difference, 6)},
        "spiking": {"k": default_k, "weight_bits": bits, **default},
        "spiking_row_scales": {"k": default_k, "weight_bits": 8, "weight_group": 0, **row_scales},
        f"spiking_{other}": {"k": default_k, "weight_bits": other_bits, **variant_row},
        "k_table": k_table,
        "speed": speed,
        "memory": memory,
        "targets": {
            "perplexity_within_5pct": default["perplexity_increase_pct"] <= 5,
            "sparsity_at_least_50pct": default["ternary_sparsity"] >= 0.5,
            "decode_at_least_2x_transformers": speed["decode_speedup_vs_transformers"] >= 2,
            "decode_at_least_llama_cpp": speed.get("decode_ratio_vs_llama_cpp", 0) >= 1.0,
            "lm_resident_memory_under_400mb": memory["spiking_lm_resident_mb"] < 400,
        },
    }
