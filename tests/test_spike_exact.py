"""The spike semantics stay exact on every path: the compiled decoding kernel, PyTorch's decoding path and the
prompt's integer product all give the float64 evaluation of the spike maths within fp32 rounding."""

from __future__ import annotations

import numpy as np
import pytest

from tests.lazy import spike_coding, torch


def int8_llama(vocab_size: int, intermediate_size: int, block_size: int):
    """A small random llama-family SpikingBrain in its INT8 inference form, embeddings wide enough to fire."""
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    torch.manual_seed(0)
    config = SpikingBrainConfig(vocab_size=vocab_size, n_embd=128, n_layer=2, n_head=4, n_kv_head=2, family="llama",
                                intermediate_size=intermediate_size, block_size=block_size)  # fmt: skip
    model = SpikingBrainForCausalLM(config).eval()
    torch.nn.init.normal_(model.wte.weight)
    return model.freeze_int8()


def _layer(in_features: int, out_features: int, bias: bool, group: int = 128):
    from core.models.spiking_layers import SpikingLinear
    from core.models.spikingbrain_model import SpikingBrainConfig

    torch.manual_seed(in_features)
    layer = SpikingLinear(in_features, out_features, bias, SpikingBrainConfig(weight_group=group)).eval()
    if bias:
        torch.nn.init.normal_(layer.bias)
    layer.freeze_int8()
    return layer


def _inputs(rows: int, in_features: int) -> torch.Tensor:
    x = torch.randn(rows, in_features) * torch.logspace(-2, 2, rows)[:, None]
    x[0, 3] = 400 * x[0].abs().mean()  # an outlier: a count in the hundreds, beyond int8 and bfloat16's 256
    return x


def _spike_maths(layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts and outputs in float64: v = mean|x| / k, c = round(x / v), y = v * sum_g s_g * sum_i w_gi c_gi + b."""
    x64 = x.double()
    v_th = (x64.abs().mean(-1, keepdim=True) / layer.k).clamp_min(1e-8)
    counts = torch.round(x64 / v_th)
    groups, out, width = layer.qweight.shape
    padded = torch.nn.functional.pad(counts, (0, groups * width - counts.shape[1])).view(-1, groups, width)
    sums = torch.einsum("rgi,goi->rgo", padded, layer.qweight.double())  # exact integers
    y = (sums * layer.qscale.double()[None]).sum(1) * v_th
    return counts, y if layer.bias is None else y + layer.bias.double()


def _close(y: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal within fp32 rounding: a few units of fp32's last place, relative to the output's size."""
    return bool(((y.double() - expected).abs().max() / expected.abs().max()) < 2e-6)


@pytest.mark.parametrize(("in_features", "out_features", "bias"),
                         [(576, 96, False), (300, 40, True), (1536, 64, False)])  # fmt: skip
def test_every_path_is_the_spike_maths_within_fp32_rounding(kernel, in_features, out_features, bias):
    layer = _layer(in_features, out_features, bias)
    x = _inputs(90, in_features)
    assert len(x) >= spike_coding.kernel_rows()  # the prompt's path below
    counts, expected = _spike_maths(layer, x)
    with torch.no_grad():
        prompt = layer(x)  # 90 tokens: the integer product on any CPU (``kernel_rows``)
        layer.use_kernel(None)
        torch_decode = torch.cat([layer(row[None]) for row in x])  # one token at a time, PyTorch's operations
        assert layer.use_kernel(kernel)
        kernel_decode = torch.cat([layer(row[None]) for row in x])
        kernel_rows = layer(x[:7])  # a few tokens in one call: four in one pass over the weights, then three
    for y in (prompt, torch_decode, kernel_decode):
        assert _close(y, expected)
    assert torch.equal(kernel_rows, kernel_decode[:7])  # the very same arithmetic, token by token
    assert counts.abs().max() > 256  # the outlier was counted whole, not rounded as bfloat16 would

    # The kernel's counts are the same integers.
    groups, out, width = layer.qweight.shape
    kernel_counts, v_th = np.empty((1, groups * width), np.int16), np.empty(1, np.float32)
    y = np.empty((1, out), np.float32)
    row = x[:1].contiguous()
    kernel.spiking_linear(row.data_ptr(), 1, in_features, layer.k, layer.qweight.data_ptr(), layer.qscale.data_ptr(),
                          (groups, out, width), None if layer.bias is None else layer.bias.data_ptr(), y.ctypes.data,
                          kernel_counts.ctypes.data, v_th.ctypes.data)  # fmt: skip
    assert np.array_equal(kernel_counts[0, :in_features], counts[0].numpy().astype(np.int16))


@pytest.mark.parametrize("group", [128, 576, 1536])
def test_the_prompts_two_integer_products_give_the_very_same_sums(monkeypatch, group):
    """torch's INT8 product (fast with VNNI) and fp32's (faster without): the same int32 sums to the last bit, at
    the largest counts and weights there are. A group too wide for fp32's 2^24 always takes the INT8 product."""
    torch.manual_seed(group)
    counts = torch.randint(-127, 128, (20, 2 * group)).float()  # tokens that fit int8 as they are, ...
    outliers = torch.randint(0, 2 * group, (10, 8))
    counts[10:].scatter_(1, outliers, torch.randint(-127 * 128, 127 * 128 + 1, (10, 8)).float())  # ... and two levels
    counts[10, :8] = 127 * 128  # at the top of two int8 levels
    qweight = torch.randint(-127, 128, (2, 48, group), dtype=torch.int8)
    qweight[0, 0] = 127
    qscale = torch.rand(2, 48).to(torch.bfloat16)
    results = []
    for int8_faster in (True, False):
        monkeypatch.setattr("core.models.spike_coding.int8_product_is_fast", lambda faster=int8_faster: faster)
        results.append(spike_coding.integer_matmul(counts, qweight, qscale))
    assert torch.equal(*results)
    exact = torch.einsum("rgi,goi->rgo", counts.double().view(20, 2, group), qweight.double())
    assert _close(results[0], (exact * qscale.double()[None]).sum(1))


def test_a_lone_outlier_of_a_wide_input_is_counted_whole_on_every_path(kernel):
    """|count| can reach k * in_features: at 9,000 inputs (a 1.5B model's MLP output is 8,960 wide) one input holding
    most of the magnitude counts past int16 (the kernel's counts) and past two int8 levels (the prompt's product)."""
    layer = _layer(9000, 48, False)
    x = torch.randn(4, 9000) * 0.01
    x[0, 5000], x[1, 17], x[1, 8999] = 1e4, -1e4, 5e3  # about 35,700 (past int16); two in one token
    x[2, 100] = 200.0  # about 16,000: past two int8 levels (127 * 128), within int16
    counts, expected = _spike_maths(layer, x)
    assert counts[0].abs().max() > 32767 and 127 * 128 < counts[2].abs().max() < 32767
    with torch.no_grad():
        assert 4 * 23 >= spike_coding.kernel_rows()
        prompt = layer(x.repeat(23, 1))[:4]  # 92 tokens: the integer product on any CPU
        assert layer.use_kernel(kernel)
        kernel_decode = torch.cat([layer(row[None]) for row in x])
        kernel_rows = layer(x)  # four tokens in one pass, the overflows of two of them set aside
    for y in (prompt, kernel_decode, kernel_rows):
        assert _close(y, expected)
    assert torch.equal(kernel_rows, kernel_decode)


def test_bfloat16_counts_would_not_pass():
    """The check has teeth: the old path (counts and group sums in bfloat16) misses it by orders of magnitude."""
    from core.models.spike_coding import int8_matmul

    layer = _layer(576, 96, False)
    x = _inputs(1, 576)
    counts, expected = _spike_maths(layer, x)
    v_th = (x.abs().mean(-1, keepdim=True) / layer.k).clamp_min(1e-8)
    old = int8_matmul(torch.round(x / v_th), layer.qweight, layer.qscale, torch.bfloat16) * v_th
    assert not _close(old, expected)


def test_a_model_decodes_the_same_with_and_without_the_kernel(kernel):
    model = int8_llama(vocab_size=300, intermediate_size=384, block_size=64)
    ids = torch.randint(0, 300, (1, 20))

    def greedy(steps: int = 12) -> tuple[list[int], torch.Tensor]:
        with torch.no_grad():
            output = model(ids)
            tokens, logits = [], []
            for _ in range(steps):
                token = output.logits[:, -1:].argmax(-1)
                tokens.append(int(token))
                output = model(token, past_key_values=output.past_key_values)
                logits.append(output.logits[0, -1])
        return tokens, torch.stack(logits)

    plain_tokens, plain_logits = greedy()
    assert model.use_kernel(kernel)
    kernel_tokens, kernel_logits = greedy()
    assert kernel_tokens == plain_tokens
    assert (kernel_logits - plain_logits).abs().max() < 1e-3 * plain_logits.abs().max()


@pytest.mark.parametrize("int8_faster", [True, False])
def test_a_prompt_takes_the_kernel_below_its_weights_crossover(kernel, monkeypatch, int8_faster):
    """INT8 weights hand a prompt of 40 tokens or more to torch's INT8 product where that is fast (VNNI), of 80 or more
    where it is not; 4-bit weights have no INT8 product on any CPU, and keep the kernel up to 80 (a VNNI machine took
    the fp32 product from 16 tokens, 0.21 s for a 60-token prompt against the kernel's 0.13)."""
    from tests.test_q4_weights import _q4_layer

    monkeypatch.setattr("core.models.spike_coding.int8_product_is_fast", lambda: int8_faster)
    int8, four_bit = _layer(576, 64, False), _q4_layer(kernel, 576, 64, False)
    assert int8.use_kernel(kernel)
    int8_rows = 40 if int8_faster else 80
    for tokens in (1, 39, 60, 79, 80):
        x = _inputs(tokens, 576)
        assert int8.decodes(x) == (tokens < int8_rows)
        assert four_bit.decodes(x) == (tokens < 80)


@pytest.mark.parametrize("bits", [8, 4])
def test_a_prompt_read_on_more_threads_is_the_very_same(kernel, monkeypatch, bits):
    """A short prompt's products run on every core (``Kernel.prompt_threads``), each output still computed by the
    same code from the same counts: equal to the last bit, the overflowed counts and a last pass of three included."""
    from tests.test_q4_weights import _q4_layer

    layer = _layer(576, 200, True) if bits == 8 else _q4_layer(kernel, 576, 200, True)
    assert layer.use_kernel(kernel)
    x = _inputs(15, 576)
    assert len(x) < spike_coding.kernel_rows()  # the kernel's path on every CPU
    x[5, 9] = 3000 * x[5].abs().mean()
    with torch.no_grad():
        monkeypatch.setattr(kernel, "prompt_threads", 1)
        alone = layer(x)
        monkeypatch.setattr(kernel, "prompt_threads", 3)
        assert torch.equal(layer(x), alone)


def test_without_a_compiler_the_kernel_says_why(tmp_path, monkeypatch):
    from core.models import native

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.raises(OSError):
        native.load(tmp_path)
