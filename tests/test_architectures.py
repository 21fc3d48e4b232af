"""Each architecture the converter takes, against ``transformers`` on a tiny random checkpoint built here: the
plain network gives the same logits and the same greedy tokens; spiking stays close (bounds below)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

VOCAB = 320
# Each: the transformers classes and what the tiny checkpoint sets beyond the shared shape.
ARCHITECTURES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {"tie_word_embeddings": False}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"tie_word_embeddings": True}),  # biases on q, k and v
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"tie_word_embeddings": True, "head_dim": 32}),  # q/k norms
}


def tiny_checkpoint(architecture: str, directory):
    """A random ``architecture`` model in a Hugging Face directory (config.json, model.safetensors), and the model."""
    import transformers
    from safetensors.torch import save_file

    config_class, model_class, extra = ARCHITECTURES[architecture]
    config = getattr(transformers, config_class)(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, rope_theta=10000.0, **extra,
    )  # fmt: skip
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "norm" in name:  # random, so a dropped bias or norm shows
                parameter.normal_(1.0 if "norm" in name else 0.0, 0.2)
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config.to_dict()))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(directory / "model.safetensors"))
    (directory / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}')
    return model


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_the_plain_network_is_transformers_and_spiking_stays_close(architecture, tmp_path):
    from core.language.language_model import load_spikingbrain_dir
    from core.language.spikingbrain_convert import convert_hf_dir

    reference = tiny_checkpoint(architecture, tmp_path / architecture)
    converted = convert_hf_dir(tmp_path / architecture, tmp_path / "converted")
    plain = load_spikingbrain_dir(converted, spiking=False)["model"]
    spiking = load_spikingbrain_dir(converted, spiking=True)["model"]
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = reference(ids).logits
        assert torch.allclose(plain(ids).logits, theirs, atol=1e-4)
        close = torch.nn.functional.cosine_similarity(spiking(ids).logits, theirs, dim=-1)
        assert close.min() > 0.97, close.min()  # INT8 weights and spike-coded inputs, within a few percent
        prompt = ids[:1, :8]
        expected = reference.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=0)[0, 8:].tolist()
        cache, tokens, step = None, [], prompt
        for _ in range(8):  # greedy, through the KV cache as a chat decodes
            output = plain(step, cache)
            cache, step = output.past_key_values, output.logits[:, -1:].argmax(-1)
            tokens.append(int(step))
    assert tokens == expected


def test_what_would_compute_something_else_is_refused(tmp_path):
    from config.errors import TantraError
    from core.language.spikingbrain_convert import hf_config_to_spikingbrain

    base = {"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 8}  # fmt: skip
    for extra, said in (({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "llama3 RoPE scaling"),
                        ({"attention_bias": True}, "a bias on the output projection"),
                        ({"sliding_window": 4, "use_sliding_window": True}, "sliding-window")):  # fmt: skip
        with pytest.raises(TantraError, match=said):
            hf_config_to_spikingbrain({**base, **extra})
    assert hf_config_to_spikingbrain({**base, "model_type": "qwen2"})["qkv_bias"]
