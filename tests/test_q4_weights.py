"""4-bit weights (``--bits 4``, GGUF's Q4_1 blocks): packed without loss from Q4_1 blocks, multiplied by the kernel as
the float64 maths says, decoded by the native step as the model decodes per projection, and converted from the
command line."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.lazy import spike_coding, torch
from tests.test_architectures import ARCHITECTURES, VOCAB, tiny_checkpoint
from tests.test_decode_step import _fp32_head


def _q4_1_blocks(rows: int, groups: int) -> torch.Tensor:
    """Weights as a Q4_1 GGUF holds them, dequantized: every block of 32 d q + m with float16 d and m, q spanning
    0..15."""
    generator = torch.Generator().manual_seed(1)
    q = torch.randint(0, 16, (rows, groups, 32), generator=generator)
    q[..., 0], q[..., 1] = 0, 15
    d = (torch.rand(rows, groups, 1, generator=generator) / 50).half().float()
    m = (-torch.rand(rows, groups, 1, generator=generator) / 10).half().float()
    return (q * d + m).reshape(rows, groups * 32)


def test_q4_1_blocks_are_kept_as_they_are():
    weight = _q4_1_blocks(8, 5)
    packed, dm = spike_coding.pack_q4(weight)
    assert packed.shape == (8, 5 * 16) and packed.dtype == torch.uint8 and dm.shape == (8, 5, 2)
    assert torch.equal(spike_coding.unpack_q4(packed, dm), weight)


def test_other_weights_are_rounded_to_their_blocks_16_levels():
    weight = torch.randn(6, 70)  # 70 inputs: the last block is padded
    packed, dm = spike_coding.pack_q4(weight)
    widened = spike_coding.unpack_q4(packed, dm)[:, :70]
    step = dm[..., 0].float().repeat_interleave(32, dim=1)[:, :70]
    assert ((widened - weight).abs() <= step * 0.51 + 1e-3).all()


def _q4_layer(kernel, in_features: int, out_features: int, bias: bool):
    from core.models.spiking_layers import SpikingLinear
    from core.models.spikingbrain_model import SpikingBrainConfig

    torch.manual_seed(in_features)
    layer = SpikingLinear(in_features, out_features, bias, SpikingBrainConfig(weight_bits=4)).eval()
    if bias:
        torch.nn.init.normal_(layer.bias)
    layer.freeze_int8()
    assert layer.use_kernel(kernel)
    return layer


def _q4_spike_maths(layer, x: torch.Tensor) -> torch.Tensor:
    """y = v sum_i w_i round(x_i / v) + b in float64, w = d q + m, v = mean|x| / k."""
    x64 = x.double()
    v_th = (x64.abs().mean(-1, keepdim=True) / layer.k).clamp_min(1e-8)
    weight = spike_coding.unpack_q4(layer.qweight, layer.qscale).double()[:, : layer.in_features]
    y = (torch.round(x64 / v_th) @ weight.t()) * v_th
    return y if layer.bias is None else y + layer.bias.double()


@pytest.mark.parametrize(("in_features", "out_features", "bias"), [(576, 96, False), (300, 40, True)])
def test_the_4_bit_kernel_gives_the_spike_maths(kernel, in_features, out_features, bias):
    layer = _q4_layer(kernel, in_features, out_features, bias)
    x = torch.randn(3, in_features) * torch.tensor([[0.01], [1.0], [100.0]])
    x[0, 3] = 400 * x[0].abs().mean()  # a count of about 1,600: past int8, kept aside and added exactly
    expected = _q4_spike_maths(layer, x)
    y = layer(x)  # three tokens: the kernel
    assert ((y.double() - expected).abs().max() / expected.abs().max()) < 2e-6
    layer.use_kernel(None)  # PyTorch: the weights widened to fp32, the counts' products summed in fp32
    assert ((layer(x).double() - expected).abs().max() / expected.abs().max()) < 2e-6


def test_four_tokens_at_once_are_each_token_alone_to_the_last_bit(kernel):
    """A prompt's tokens go through the weights four at a time: each token's arithmetic is the single token's."""
    layer = _q4_layer(kernel, 576, 64, True)
    x = torch.randn(6, 576) * torch.logspace(-2, 2, 6)[:, None]
    x[1, 5] = 500 * x[1].abs().mean()  # an overflowed count among the four
    together = layer(x)
    assert torch.equal(together, torch.cat([layer(row[None]) for row in x]))
    assert ((together.double() - _q4_spike_maths(layer, x)).abs().max() / together.abs().max()) < 2e-6


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_the_native_step_decodes_4_bit_weights_as_the_model_does(architecture, kernel, tmp_path, monkeypatch):
    from core.language.chat_model import LocalChatModel
    from core.language.language_model import load_spikingbrain_dir
    from core.language.spikingbrain_convert import convert_hf_dir
    from core.models.decode_step import NativeStep, unsupported

    tiny_checkpoint(architecture, tmp_path / architecture)
    converted = convert_hf_dir(tmp_path / architecture, tmp_path / "converted", bits=4)
    loaded = load_spikingbrain_dir(converted)
    model = loaded["model"]
    assert "4-bit weights" in LocalChatModel(model, loaded["tokenizer"], architecture).describe()  # /model says so
    assert model.config.weight_bits == 4 and model.use_kernel(kernel) and unsupported(model) is None
    step = NativeStep(model, kernel.library)
    _fp32_head(monkeypatch)  # the native head's input in fine int16 steps, PyTorch's in bfloat16: compare in fp32
    prompt = torch.randint(0, VOCAB, (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        output = model(prompt, last_only=True)
        for _ in range(8):  # the model decodes per projection through the same 4-bit kernel
            token = output.logits[:, -1:].argmax(-1)
            native = step(int(token), copy.deepcopy(output.past_key_values))
            output = model(token, output.past_key_values)
            expected = output.logits[0, -1]
            assert ((native - expected).abs().max() / expected.abs().max()) < 1e-4
        pytorch = load_spikingbrain_dir(converted)["model"](prompt[:, :8], last_only=True).logits[0, -1]
        kernel_path = model(prompt[:, :8], last_only=True).logits[0, -1]
    # The same spike maths, summed in another order: a count on a rounding boundary may go either way
    assert torch.nn.functional.cosine_similarity(pytorch, kernel_path, dim=0) > 0.999


def test_convert_writes_4_bit_weights_on_request(tmp_path):
    from safetensors import safe_open

    from core.language.spikingbrain_convert import INT8_WEIGHTS
    from tests.conftest import run_tantra

    tiny_checkpoint("qwen2", tmp_path / "qwen2")
    done = run_tantra("models", "convert", str(tmp_path / "qwen2"), str(tmp_path / "out"), "--bits", "4")
    assert done.returncode == 0, done.stderr
    with safe_open(str(tmp_path / "out" / INT8_WEIGHTS), "np") as weights:
        packed = weights.get_tensor("blocks.0.mlp.down_proj.qweight")
    assert packed.dtype == np.uint8
    refused = run_tantra("models", "convert", str(tmp_path / "qwen2"), str(tmp_path / "other"), "--bits", "3")
    message = refused.stderr.decode()
    assert refused.returncode != 0 and "use 8 or 4" in message and "Traceback" not in message


def test_a_gguf_keeps_its_own_bits_unless_told(tmp_path, monkeypatch):
    """Q4_1 projections (the default SmolLM2's) become 4-bit weights holding the file's very blocks where torch's
    INT8 product is slow (no VNNI), INT8 where it is fast; Q8_0 ones INT8; ``--bits`` overrides."""
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    from core.language.language_model import load_spikingbrain_dir
    from core.language.spikingbrain_convert import convert_gguf
    from tantra_benchmarks.llama_cpp import write_shape_gguf

    shape = {"vocab_size": 96, "n_embd": 64, "n_layer": 1, "n_head": 4, "n_kv_head": 2, "intermediate_size": 128}
    q4_path = write_shape_gguf(tmp_path / "q4.gguf", shape, "Q4_1")
    monkeypatch.setattr("core.models.spike_coding.int8_product_is_fast", lambda: False)
    model = load_spikingbrain_dir(convert_gguf(q4_path, tmp_path / "q4"))["model"]
    down = next(t for t in GGUFReader(str(q4_path)).tensors if t.name == "blk.0.ffn_down.weight")
    in_file = dequantize(down.data, GGMLQuantizationType.Q4_1).reshape(64, 128)
    layer = model.blocks[0].mlp.down_proj
    assert model.config.weight_bits == 4
    assert np.array_equal(spike_coding.unpack_q4(layer.qweight, layer.qscale).numpy(), in_file)
    q8_path = write_shape_gguf(tmp_path / "q8.gguf", shape, "Q8_0")
    assert load_spikingbrain_dir(convert_gguf(q8_path, tmp_path / "q8"))["model"].config.weight_bits == 8
    assert load_spikingbrain_dir(convert_gguf(q4_path, tmp_path / "told", 8))["model"].config.weight_bits == 8
    monkeypatch.setattr("core.models.spike_coding.int8_product_is_fast", lambda: True)
    assert load_spikingbrain_dir(convert_gguf(q4_path, tmp_path / "vnni"))["model"].config.weight_bits == 8


def _float16_rounding(dm: torch.Tensor) -> torch.Tensor:
    """Per weight, how far rounding a Q4_K block's d * scale and dmin * min to float16 can move it (2^-11 of each)."""
    d, m = dm.float().unbind(-1)
    return ((15 * d + m.abs()) * 2**-11).repeat_interleave(32, dim=1)


def test_a_q4_k_m_gguf_keeps_its_4_bit_blocks_as_they_are_and_its_finer_ones_in_int8(kernel, tmp_path, monkeypatch):
    """As llama.cpp's Q4_K_M: Q4_K projections, Q6_K for the MLP's down projection. Where 4-bit weights are chosen
    (no VNNI, as here), the Q4_K blocks become 4-bit weights as the file holds them (Llama's q and k rows in Hugging
    Face's order, as the reference's), not rounded again by their minimum and maximum; the Q6_K projection stays
    INT8; and the native step decodes the mix as the model does."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from core.language.chat_model import LocalChatModel
    from core.language.language_model import load_spikingbrain_dir
    from core.language.spikingbrain_convert import convert_gguf, weights_form
    from core.models.decode_step import NativeStep, unsupported
    from tantra_benchmarks.llama_cpp import write_shape_gguf

    shape = {"vocab_size": 96, "n_embd": 256, "n_layer": 1, "n_head": 4, "n_kv_head": 2, "intermediate_size": 512}
    path = write_shape_gguf(tmp_path / "q4_k_m.gguf", shape, "Q4_K", {"ffn_down": "Q6_K"})
    monkeypatch.setattr("core.models.spike_coding.int8_product_is_fast", lambda: False)
    converted = convert_gguf(path, tmp_path / "converted")
    loaded = load_spikingbrain_dir(converted)
    model, reference = loaded["model"], load_spikingbrain_dir(converted, spiking=False)["model"]
    assert model.config.weight_bits == 4 and model.config.int8_projections == ("blocks.0.mlp.down_proj",)
    assert "1 of 4 projections INT8" in LocalChatModel(model, loaded["tokenizer"], "q4_k_m").describe()
    assert weights_form(converted) == "4-bit weights, 1 projection in INT8 (finer in the file)"
    block, exact = model.blocks[0], reference.blocks[0]
    assert block.mlp.down_proj.qweight.dtype == torch.int8
    for ours, theirs in ((block.attn.qkv_proj, exact.attn.qkv_proj), (block.attn.o_proj, exact.attn.o_proj),
                         (block.mlp.up_proj, exact.mlp.up_proj)):  # fmt: skip
        widened = spike_coding.unpack_q4(ours.qweight, ours.qscale)
        assert ((widened - theirs.weight).abs() <= _float16_rounding(ours.qscale)).all()
    o_proj = next(t for t in GGUFReader(str(path)).tensors if t.name == "blk.0.attn_output.weight")
    in_file = torch.from_numpy(dequantize(o_proj.data, o_proj.tensor_type).reshape(256, 256).copy())
    rounded_again = spike_coding.unpack_q4(*spike_coding.pack_q4(in_file))  # what min and max would make of them
    assert ((rounded_again - in_file).abs() > 10 * _float16_rounding(block.attn.o_proj.qscale)).any()
    assert model.use_kernel(kernel) and unsupported(model) is None
    native_step = NativeStep(model, kernel.library)
    _fp32_head(monkeypatch)
    prompt = torch.randint(0, 96, (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        output = model(prompt, last_only=True)
        for _ in range(4):
            token = output.logits[:, -1:].argmax(-1)
            native = native_step(int(token), copy.deepcopy(output.past_key_values))
            output = model(token, output.past_key_values)
            assert ((native - output.logits[0, -1]).abs().max() / output.logits[0, -1].abs().max()) < 1e-4


def test_an_ollama_model_is_imported_with_4_bit_weights(tmp_path):
    from config.settings import Settings
    from core.language.imported_models import import_ollama
    from core.language.language_model import load_spikingbrain_dir
    from tests.test_architectures import fake_ollama, tiny_gguf

    tiny_gguf("qwen2", tiny_checkpoint("qwen2", tmp_path / "qwen2"), tmp_path / "tiny.gguf")
    fake_ollama(tmp_path / "ollama", "tiny-qwen", tmp_path / "tiny.gguf", "0.5b")
    _, path = import_ollama("tiny-qwen:0.5b", Settings(home=tmp_path / "home"), print, tmp_path / "ollama", bits=4)
    model = load_spikingbrain_dir(path)["model"]
    assert model.config.weight_bits == 4 and model.blocks[0].mlp.down_proj.qweight.dtype == torch.uint8
    with torch.no_grad():
        ids = torch.randint(0, VOCAB, (1, 8))
        spiking, plain = model(ids).logits, load_spikingbrain_dir(path, spiking=False)["model"](ids).logits
    assert torch.nn.functional.cosine_similarity(spiking.flatten(), plain.flatten(), dim=0) > 0.9


def test_the_trainable_form_computes_what_the_frozen_4_bit_form_does():
    from core.models.spiking_layers import SpikingLinear
    from core.models.spikingbrain_model import SpikingBrainConfig

    torch.manual_seed(3)
    layer = SpikingLinear(100, 20, True, SpikingBrainConfig(weight_bits=4)).eval()
    x = torch.randn(5, 100)
    with torch.no_grad():
        trainable = layer(x)
        layer.freeze_int8()
        frozen = layer(x)
    assert torch.allclose(trainable, frozen, rtol=1e-4, atol=1e-4 * frozen.abs().max())


def test_a_k_too_wide_for_the_4_bit_kernel_decodes_in_pytorch(kernel):
    """More spikes a count, more counts past int8 than the kernel keeps aside: never silently dropped."""
    from core.models.decode_step import NativeStep
    from core.models.spikingbrain_model import SpikingBrainConfig, SpikingBrainForCausalLM

    config = SpikingBrainConfig(vocab_size=64, n_embd=64, n_layer=1, n_head=2, family="llama", weight_bits=4)
    model = SpikingBrainForCausalLM(config).freeze_int8()
    assert model.use_kernel(kernel)
    model.native_step = NativeStep(model, kernel.library)
    model.set_spike_k(8.0)  # (8 + 1) * 256 / 127: 18 counts past int8 at most, room enough
    assert model.native_step is not None
    model.set_spike_k(3000.0)  # 3,001 * 64 / 127 = 1,512 counts past int8 at most: more than 1,024
    assert model.native_step is None and model.blocks[0].attn.qkv_proj.kernel is None
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()


def test_pytorch_widens_4_bit_weights_a_block_of_outputs_at_a_time(monkeypatch):
    """Long prompts multiply in PyTorch: the same product whatever the block, never a whole projection in fp32."""
    torch.manual_seed(4)
    packed, dm = spike_coding.pack_q4(torch.randn(50, 70))
    x = torch.randn(3, 70)
    whole = x @ spike_coding.unpack_q4(packed, dm)[:, :70].t()
    monkeypatch.setattr("core.models.spike_coding.Q4_WIDEN_ROWS", 16)  # 50 outputs: blocks of 16, 16, 16 and 2
    assert torch.allclose(spike_coding.q4_matmul(x, packed, dm, 70), whole, atol=1e-5)
