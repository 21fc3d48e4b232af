"""The native decoding step (``core.models.decode_step``) computes what the PyTorch model computes, token by token,
for every llama-family architecture: the same keys and values in the cache, the same logits up to fp32's order of
additions, the same greedy tokens, across a sliding window and a cache that grows while decoding."""

from __future__ import annotations

import copy

import pytest

from tests.lazy import torch
from tests.test_architectures import ARCHITECTURES, VOCAB, tiny_checkpoint
from tests.test_spike_exact import int8_llama


def _fp32_head(monkeypatch) -> None:
    """PyTorch's output head rounds its input to bfloat16 (for speed); the native head reads it in int16 steps of
    its largest entry / 32767, a hundred times finer. The reference here computes the head in fp32, so the two differ
    by the native head's steps alone: a few 1e-5 of the largest logit."""
    from core.models.spike_coding import int8_matmul
    from core.models.spiking_layers import Int8Rows

    monkeypatch.setattr(Int8Rows, "project", lambda rows, x: int8_matmul(x, rows.qweight[None], rows.qscale[None],
                                                                          torch.float32))  # fmt: skip


def _steps_from_the_same_cache(model, step, prompt: torch.Tensor, steps: int):
    """Greedy decoding by the PyTorch model; at each step the native step also runs the same token from a copy of
    the same cache. Returns both logits per step and both caches after the last one."""
    with torch.no_grad():
        output = model(prompt, last_only=True)
        expected, native = [], []
        for _ in range(steps):
            token = output.logits[:, -1:].argmax(-1)
            cache = copy.deepcopy(output.past_key_values)
            native.append(step(int(token), cache))
            output = model(token, output.past_key_values)
            expected.append(output.logits[0, -1])
    return torch.stack(expected), torch.stack(native), output.past_key_values, cache


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_the_native_step_decodes_as_the_pytorch_model(architecture, kernel, tmp_path, monkeypatch):
    from core.language.language_model import load_spikingbrain_dir
    from core.language.spikingbrain_convert import convert_hf_dir
    from core.models.decode_step import NativeStep, unsupported

    tiny_checkpoint(architecture, tmp_path / architecture)
    model = load_spikingbrain_dir(convert_hf_dir(tmp_path / architecture, tmp_path / "converted"))["model"]
    assert model.use_kernel(kernel) and unsupported(model) is None
    _fp32_head(monkeypatch)
    # 60 prompt tokens and 12 more: the cache's buffers (64 first) grow during the native steps, and Gemma's
    # sliding layers (a window of 6) see only their window.
    prompt = torch.randint(0, VOCAB, (1, 60), generator=torch.Generator().manual_seed(2))
    expected, native, expected_cache, cache = _steps_from_the_same_cache(model, NativeStep(model, kernel.library),
                                                                         prompt, 12)  # fmt: skip
    error = (native - expected).abs().amax(-1) / expected.abs().amax(-1)
    # The order of fp32 additions differs (attention, norms), so now and then a spike count that sits on a
    # rounding boundary goes the other way: a random tiny network (Gemma's eightfold embeddings most) shows it at
    # about one step in twelve. Everywhere else the two agree to the head's int16 steps.
    assert (error < 1e-4).sum() >= 11, error
    assert torch.nn.functional.cosine_similarity(native, expected, dim=-1).min() > 0.95
    assert cache.seen == expected_cache.seen == 72
    for (keys, values), (expected_keys, expected_values) in zip(cache.buffers, expected_cache.buffers, strict=True):
        assert torch.allclose(keys[:, :, 71], expected_keys[:, :, 71], atol=1e-4)
        assert torch.allclose(values[:, :, 71], expected_values[:, :, 71], atol=1e-4)


def test_what_the_native_step_cannot_run_is_said(kernel):
    from core.models.decode_step import unsupported
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    gpt2 = SpikingBrainForCausalLM(SpikingBrainConfig(vocab_size=64, n_embd=64, n_layer=1, n_head=2)).freeze_int8()
    assert "llama" in unsupported(gpt2)
    llama = SpikingBrainForCausalLM(SpikingBrainConfig(vocab_size=64, n_embd=64, n_layer=1, n_head=2, family="llama"))
    assert "INT8" in unsupported(llama)
    llama.freeze_int8()
    assert "kernel" in unsupported(llama)
    assert llama.use_kernel(kernel) and unsupported(llama) is None


def test_the_native_step_stands_aside_for_the_plain_network_and_firing_records(kernel):
    from core.models.decode_step import NativeStep
    from core.models.spikingbrain_model import KVCache, SpikingBrainConfig, SpikingBrainForCausalLM

    config = SpikingBrainConfig(vocab_size=64, n_embd=64, n_layer=1, n_head=2, family="llama", block_size=32)
    model = SpikingBrainForCausalLM(config).freeze_int8()
    model.use_kernel(kernel)
    step, calls = NativeStep(model, kernel.library), []
    model.native_step = lambda token, cache: calls.append(token) or step(token, cache)
    with torch.no_grad():
        output = model(torch.tensor([[1, 2]]))
        model(torch.tensor([[3]]), output.past_key_values)
        assert calls == [3]
        assert model.spike_stats(torch.tensor([[4]])).entries  # recorded by the per-projection path
        model.set_spiking(False)
        model(torch.tensor([[5]]))
        assert calls == [3]
    full = KVCache(config.n_layer)
    full.lengths = [config.block_size] * config.n_layer
    with pytest.raises(ValueError, match="context"):
        step(5, full)


def test_the_native_step_counts_the_inputs_that_did_not_fire(kernel):
    from core.models.decode_step import PROJECTIONS, NativeStep

    model = int8_llama(vocab_size=64, intermediate_size=256, block_size=32)
    config = model.config
    model.use_kernel(kernel)
    step = NativeStep(model, kernel.library)
    ids = torch.tensor([[5, 9, 13, 2, 7]])
    assert step.silence() == {}
    with torch.no_grad():
        cache = model(ids[:, :-1]).past_key_values
        step.count_silence()
        step(int(ids[0, -1]), cache)
        silence = step.silence()
        expected = model.spike_stats(ids, last_tokens=1)  # the PyTorch path's tally of the same token
    assert set(silence) == set(PROJECTIONS) and all(0 < share < 1 for share in silence.values())
    inputs = {"qkv": 128, "o": 128, "up": 128, "down": 256}
    zeros = sum(silence[kind] * inputs[kind] * config.n_layer for kind in PROJECTIONS)
    assert zeros == pytest.approx(expected.silent_entries, abs=2)
    step.count_silence(False)
    assert step.silence() == {}


def test_more_threads_compute_the_very_same_logits(kernel):
    """The team of threads (``native/team.c``) splits each loop into chunks that any thread may take: every output
    is still computed by the same code from the same inputs, so the logits are equal bit for bit, at a context long
    enough for attention to be split over the heads too (and many steps, for a race to show)."""
    from core.models.decode_step import NativeStep

    model = int8_llama(vocab_size=512, intermediate_size=256, block_size=1200)
    model.use_kernel(kernel)
    alone, team = NativeStep(model, kernel.library, threads=1), NativeStep(model, kernel.library, threads=3)
    prompt = torch.randint(0, 512, (1, 1030), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cache = model(prompt).past_key_values
    token = 7
    for _ in range(60):
        other = copy.deepcopy(cache)
        logits = alone(token, cache)
        assert torch.equal(team(token, other), logits)
        token = int(logits.argmax())
