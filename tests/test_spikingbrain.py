"""SpikingBrain against transformers' own models on the same weights, spike coding, and the real model's answers."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from config.settings import Settings
from tests.conftest import run_tantra
from tests.lazy import spike_coding, torch


@pytest.fixture(scope="session")
def smollm2(settings):
    from config.model_config import find_store_model
    from core.runtime import model_store

    return model_store.ensure(find_store_model("spikingbrain"), settings)


def test_spike_coding_round_trips_and_unrolls():
    torch.manual_seed(0)
    x = torch.randn(4, 300)
    counts, v_th = spike_coding.spike_counts(x, k=3.0)
    assert torch.equal(counts, counts.round())  # integers
    assert ((counts * v_th - x).abs() <= v_th / 2 + 1e-6).all()  # within half a threshold
    for coding in ("binary", "ternary", "bitwise"):
        trains = spike_coding.unroll_spikes(counts, coding)
        if coding == "bitwise":
            total = sum(trains[t] * 2**t for t in range(len(trains)))
        else:
            total = trains.sum(0) * (counts.sign().long() if coding == "binary" else 1)
        assert torch.equal(total, counts.long()), coding
    assert set(spike_coding.unroll_spikes(counts, "ternary").unique().tolist()) <= {-1, 0, 1}


def test_spike_stats_count_what_the_unrolled_trains_hold():
    from core.models.spike_coding import SpikeStats

    torch.manual_seed(1)
    counts = torch.randint(-9, 10, (1, 6, 40)).float()
    counts[0, 2] = 0  # a silent token: a window of 0 steps
    counts[0, 4, :32] = 0  # a silent block of 32 inputs (the second, 32-39 and padding, fires)
    stats = SpikeStats(bitwise=True)
    stats.add(counts)
    silent = spikes = slots = bit_spikes = bit_slots = 0
    for row in counts.reshape(-1, 40):
        if row.abs().max() == 0:
            silent += 40
            continue
        ternary, bitwise = spike_coding.unroll_spikes(row, "ternary"), spike_coding.unroll_spikes(row, "bitwise")
        silent += int((row == 0).sum())
        spikes, slots = spikes + int((ternary != 0).sum()), slots + ternary.numel()
        bit_spikes, bit_slots = bit_spikes + int((bitwise != 0).sum()), bit_slots + bitwise.numel()
    assert stats.silent_entries == silent and stats.entries == counts.numel()
    assert stats.ternary_sparsity == pytest.approx(1 - spikes / slots)
    assert stats.bitwise_sparsity == pytest.approx(1 - bit_spikes / bit_slots)
    assert stats.mean_spikes == pytest.approx(counts.abs().mean().item())
    assert (stats.silent_blocks, stats.blocks) == (3, 12)  # both of the silent token's, and token 4's first


def test_straight_through_gradient_keeps_the_model_trainable():
    x = torch.randn(3, 16, requires_grad=True)
    counts, v_th = spike_coding.spike_counts(x, k=3.0)
    (counts * v_th).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_int8_weights_one_scale_per_group_of_128():
    weight = torch.randn(8, 300)
    q, scale = spike_coding.quantize_int8(weight, 128)
    assert q.dtype == torch.int8 and q.shape == (8, 3, 128) and scale.shape == (8, 3, 1)
    assert (spike_coding.dequantize_int8(q, scale, 300) - weight).abs().max() <= scale.max() / 2 + 1e-6


def test_int8_inference_form_computes_what_the_trainable_form_simulates():
    """freeze_int8 keeps only INT8 weights and multiplies integer spike counts with them: same result, 1/4 the bytes."""
    from core.models.spiking_layers import SpikingLinear
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    torch.manual_seed(0)
    for group in (128, 0):  # groups of 128 inputs (the report's), or one scale per output row
        config = SpikingBrainConfig(weight_group=group)
        layer = SpikingLinear(300, 40, True, config).eval()
        x = torch.randn(20, 300)
        x[:5] *= 3  # the first five rows alone go through the one-token kernel, all twenty through the batched path
        with torch.no_grad():
            simulated = layer(x)
            layer.freeze_int8()
            assert layer.weight is None and layer.qweight.dtype == torch.int8
            # bfloat16 carries the counts (exact below 257) and the sums: agreement to its precision.
            for rows in (slice(0, 5), slice(0, 20)):
                assert torch.allclose(layer(x[rows]), simulated[rows], rtol=0.01, atol=0.01 * simulated.abs().max())

    config = SpikingBrainConfig(vocab_size=300, n_embd=64, n_layer=2, n_head=4, n_kv_head=2, family="llama",
                                intermediate_size=320, block_size=64)  # fmt: skip
    trainable = SpikingBrainForCausalLM(config).eval()
    torch.nn.init.normal_(trainable.wte.weight)  # logits of a trained model's size, not the init's near-zero ones
    ids = torch.randint(0, 300, (1, 24))
    with torch.no_grad():
        simulated = trainable(ids).logits
        frozen = SpikingBrainForCausalLM.from_state_dict(config, dict(trainable.state_dict())).freeze_int8()
        logits = frozen(ids).logits  # the embedding and head are INT8 too now
    assert (logits - simulated).norm() / simulated.norm() < 0.05
    assert (logits.argmax(-1) == simulated.argmax(-1)).float().mean() > 0.9


@pytest.mark.slow  # against transformers: 3 s
def test_gpt2_family_matches_transformers_without_spiking(tmp_path):
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    from core.language.language_model import load_spikingbrain_dir
    from core.language.spikingbrain_convert import convert_hf_dir

    torch.manual_seed(0)
    hf_config = GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=2, n_head=4)
    reference = GPT2LMHeadModel(hf_config).eval()
    source = tmp_path / "gpt2-tiny"
    source.mkdir()
    (source / "config.json").write_text(json.dumps(hf_config.to_dict()))
    state = {k: v.contiguous() for k, v in reference.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(source / "model.safetensors"))
    (source / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}')
    converted = convert_hf_dir(source, tmp_path / "converted")
    model = load_spikingbrain_dir(converted, spiking=False)["model"]
    ids = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-5)
        # The KV cache gives the same logits as a full pass.
        first = model(ids[:, :12])
        cached = model(ids[:, 12:], first.past_key_values).logits
        assert torch.allclose(cached, reference(ids).logits[:, 12:], atol=1e-5)


@pytest.mark.slow  # against transformers: 2 s
def test_llama_checkpoint_directory_matches_transformers_without_spiking(tmp_path):
    """A Hugging Face Llama directory (grouped-query attention, untied head) through the converter."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.language.language_model import load_spikingbrain_dir
    from core.language.spikingbrain_convert import convert_hf_dir

    torch.manual_seed(0)
    hf_config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                            tie_word_embeddings=False)  # fmt: skip
    reference = LlamaForCausalLM(hf_config).eval()
    source = tmp_path / "llama-tiny"
    source.mkdir()
    (source / "config.json").write_text(json.dumps(hf_config.to_dict()))
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(source / "model.safetensors"))
    (source / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []}}')
    model = load_spikingbrain_dir(convert_hf_dir(source, tmp_path / "converted"), spiking=False)["model"]
    ids = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-5)


@pytest.mark.parametrize("tied", [True, False])
def test_reference_llama_holds_our_weights(tied):
    """``core.runtime.reference_models`` builds transformers' Llama from SpikingBrain's weights (``tantra bench chat``'s
    reference): the same logits as the plain network."""
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM
    from core.runtime.reference_models import stock_transformers_llama

    torch.manual_seed(0)
    config = SpikingBrainConfig(vocab_size=300, n_embd=64, n_layer=2, n_head=4, n_kv_head=2, family="llama",
                                intermediate_size=160, block_size=64, tie_embeddings=tied, spiking=False)  # fmt: skip
    ours = SpikingBrainForCausalLM(config).eval()
    for parameter in ours.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    stock = stock_transformers_llama(config, dict(ours.state_dict()))
    ids = torch.randint(0, 300, (2, 20))
    with torch.no_grad():
        assert torch.allclose(stock(ids).logits, ours(ids).logits, atol=1e-5)


@pytest.mark.slow
def test_llama_family_matches_transformers_on_smollm2(smollm2, tmp_path):
    """transformers dequantizes the same pinned GGUF itself; the logits must agree."""
    from transformers import AutoModelForCausalLM

    from config.model_config import find_store_model
    from core.language.language_model import load_spikingbrain_dir
    from core.runtime.model_store import pull

    gguf_dir = pull(replace(find_store_model("spikingbrain"), convert=None), Settings(home=tmp_path), say=print)
    reference = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file="model.gguf", dtype=torch.float32)
    loaded = load_spikingbrain_dir(smollm2, spiking=False)
    model, tokenizer = loaded["model"], loaded["tokenizer"]
    ids = torch.tensor([tokenizer.encode("The quick brown fox jumps over the lazy dog. Spiking neurons")])
    with torch.no_grad():
        ours, theirs = model(ids).logits, reference.eval()(ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


@pytest.mark.slow
def test_spiking_smollm2_answers_paris(smollm2, settings):
    result = run_tantra(
        "chat", "What is the capital of France? Answer in one sentence.", "--temperature", "0", "--json",
        env={"TANTRA_HOME": str(settings.home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["spiking"] is True and "Paris" in answer["reply"]


@pytest.mark.slow
def test_chat_reads_a_pipe_and_rejects_binary(smollm2, settings):
    env = {"TANTRA_HOME": str(settings.home)}
    result = run_tantra("chat", "--temperature", "0", "-n", "20", stdin=b"What is the capital of France?\n", env=env)
    assert result.returncode == 0 and b"Paris" in result.stdout
    result = run_tantra("chat", stdin=b"\x00\x01\x02binary", env=env)
    assert result.returncode == 1 and b"binary" in result.stderr and b"Traceback" not in result.stderr
    result = run_tantra("chat", stdin=b"\xff\xfe not utf-8", env=env)
    assert result.returncode == 1 and b"UTF-8" in result.stderr
    result = run_tantra("chat", stdin=b"   \n", env=env)
    assert result.returncode == 1 and b"empty" in result.stderr


@pytest.mark.slow
def test_corrupt_weights_are_caught_by_checksum(smollm2, tmp_path):
    """Same size, flipped bytes: only the checksum can tell, and the message says how to fix it."""
    from core.language.spikingbrain_convert import INT8_WEIGHTS

    copy = tmp_path / "models" / smollm2.name
    copy.mkdir(parents=True)
    for file in smollm2.iterdir():
        (copy / file.name).hardlink_to(file) if file.name != INT8_WEIGHTS else None
    data = bytearray((smollm2 / INT8_WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / INT8_WEIGHTS).write_bytes(data)
    result = run_tantra("chat", "-n", "3", "--json", "hello", env={"TANTRA_HOME": str(tmp_path)})
    assert b"corrupt" in result.stderr and b"--force" in result.stderr and b"Traceback" not in result.stderr
    # The intact full-precision weights are the next link of the chain: the chat goes on, without spikes.
    assert result.returncode == 0 and json.loads(result.stdout)["spiking"] is False
    result = run_tantra("chat", "-m", "spikingbrain", "hello", env={"TANTRA_HOME": str(tmp_path)})  # no chain
    assert result.returncode == 1 and b"corrupt" in result.stderr and b"Traceback" not in result.stderr
