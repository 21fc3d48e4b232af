"""Reference implementations built from our weights, to measure and test ours against: the same numbers through
someone else's code. Their libraries (``transformers``) are imported only when one is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.models.spikingbrain_model import SpikingBrainConfig


def stock_transformers_llama(config: SpikingBrainConfig, state: dict):
    """transformers' own LlamaForCausalLM holding SpikingBrain's full-precision weights (un-fused, renamed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.n_embd, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.n_layer, num_attention_heads=config.n_head, num_key_value_heads=config.n_kv_head,
        max_position_embeddings=config.block_size, rms_norm_eps=config.norm_eps, rope_theta=config.rope_base,
        tie_word_embeddings=config.tie_embeddings,
    )  # fmt: skip
    head_dim = config.head_dim
    theirs = {"model.embed_tokens.weight": state["wte.weight"], "model.norm.weight": state["ln_f.weight"]}
    if "lm_head.weight" in state:
        theirs["lm_head.weight"] = state["lm_head.weight"]
    for i in range(config.n_layer):
        ours, layer = f"blocks.{i}.", f"model.layers.{i}."
        q, k, v = state[f"{ours}attn.qkv_proj.weight"].split(
            [config.n_head * head_dim, config.n_kv_head * head_dim, config.n_kv_head * head_dim]
        )
        gate, up = state[f"{ours}mlp.up_proj.weight"].split(config.intermediate_size)
        parts = {
            "self_attn.q_proj": q, "self_attn.k_proj": k, "self_attn.v_proj": v,
            "self_attn.o_proj": state[f"{ours}attn.o_proj.weight"], "mlp.gate_proj": gate, "mlp.up_proj": up,
            "mlp.down_proj": state[f"{ours}mlp.down_proj.weight"], "input_layernorm": state[f"{ours}ln_1.weight"],
            "post_attention_layernorm": state[f"{ours}ln_2.weight"],
        }  # fmt: skip
        theirs.update({f"{layer}{name}.weight": tensor.contiguous() for name, tensor in parts.items()})
    with torch.device("meta"):
        model = LlamaForCausalLM(hf_config)
    model.load_state_dict(theirs, strict=False, assign=True)
    model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(hf_config)  # its buffers were on the meta device
    return model.eval()
