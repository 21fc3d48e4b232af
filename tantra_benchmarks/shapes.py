"""``tantra bench chat --shapes``: decode speed and memory of SpikingBrain at the shapes of bigger models
(SmolLM2-135M and 360M, Qwen2.5-0.5B and 1.5B), on random weights: speed does not depend on the values. Each runs
as ``tantra chat`` decodes (spike-coded inputs, the compiled kernel's native step), with INT8 weights and again with
4-bit ones (``--bits 4``), through ``tantra bench chat``'s own timing (a 200-token prompt, then 128 greedy tokens
with the KV cache). Where llama.cpp is importable, a GGUF of each shape is written and decoded beside them, on as
many threads: Q8_0 (the INT8 weights' match) and Q4_1 (the 4-bit ones')."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

from config.model_config import MODEL_CONFIG
from config.settings import Settings
from core.language.loading import decoding_threads
from core.model_loader import ModelLoader
from tantra_benchmarks import llama_cpp
from tantra_benchmarks.chat import DECODE_TOKENS, PROMPT_TOKENS, _speed
from tantra_benchmarks.common import machine

SHAPES = {
    "135M (SmolLM2-135M)": {"vocab_size": 49152, "n_embd": 576, "n_layer": 30, "n_head": 9, "n_kv_head": 3,
                            "intermediate_size": 1536},
    "360M (SmolLM2-360M)": {"vocab_size": 49152, "n_embd": 960, "n_layer": 32, "n_head": 15, "n_kv_head": 5,
                            "intermediate_size": 2560},
    "0.5B (Qwen2.5-0.5B)": {"vocab_size": 151936, "n_embd": 896, "n_layer": 24, "n_head": 14, "n_kv_head": 2,
                            "intermediate_size": 4864, "qkv_bias": True},
    "1.5B (Qwen2.5-1.5B)": {"vocab_size": 151936, "n_embd": 1536, "n_layer": 28, "n_head": 12, "n_kv_head": 2,
                            "intermediate_size": 8960, "qkv_bias": True},
}  # fmt: skip


def bench_shapes(settings: Settings, shapes: dict[str, dict] | None = None) -> dict:
    import torch

    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    loader = ModelLoader(MODEL_CONFIG, settings)
    rows = {}
    for label, shape in (shapes or SHAPES).items():
        row = rows[label] = {}
        for bits in (8, 4):
            torch.manual_seed(0)
            config = SpikingBrainConfig(family="llama", block_size=1024, tie_embeddings=True, weight_bits=bits,
                                        **shape)  # fmt: skip
            with torch.no_grad():
                model = SpikingBrainForCausalLM(config).eval()
                row["parameters_m"] = round(sum(t.numel() for t in model.parameters()) / 1e6)
                model.freeze_int8()  # the spiking inference form tantra chat loads
            loader.use_decoding_kernel(model)
            weights_mb = round(sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20, 1)
            speed = _speed(model, config.vocab_size)
            row.update({"int8_weights_mb": weights_mb, **speed} if bits == 8 else
                       {"4_bit": {"weights_mb": weights_mb, **speed}})  # fmt: skip
            del model
            gc.collect()
        for kind in ("Q8_0", "Q4_1"):
            theirs = row[f"llama_cpp_{kind.lower()}"] = _llama_cpp_row(settings, shape, kind)
            ours = row if kind == "Q8_0" else row["4_bit"]
            if theirs.get("decode_tokens_per_second"):
                ours["decode_ratio_vs_llama_cpp"] = round(ours["decode_tokens_per_second"]
                                                          / theirs["decode_tokens_per_second"], 2)  # fmt: skip
    return {"machine": machine(settings), "prompt_tokens": PROMPT_TOKENS, "decode_tokens": DECODE_TOKENS,
            "decode_threads": decoding_threads(settings), "weights": "random (speed does not depend on the values)",
            "shapes": rows}  # fmt: skip


def _llama_cpp_row(settings: Settings, shape: dict, projections: str = "Q8_0") -> dict:
    if not llama_cpp.available():
        return {"skipped": llama_cpp.MISSING}
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.models_dir) as scratch:  # the store's disk: up to 1.7 GB
        path = llama_cpp.write_shape_gguf(Path(scratch) / "shape.gguf", shape, projections)
        speed = llama_cpp.decode_speed(path, decoding_threads(settings), shape["vocab_size"])
        return {"megabytes": round(path.stat().st_size / 2**20), **speed}
