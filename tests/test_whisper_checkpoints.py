"""Checkpoint paths whose real weights cannot be had here, exercised with tiny generated models."""

from __future__ import annotations

import numpy as np
import pytest

from config.errors import TantraError
from core.hearing.whisper_convert import OPENAI_CHECKPOINT, read_ct2_model
from tests.conftest import SAMPLE, run_tantra
from tests.lazy import torch

TINY_DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
                 n_vocab=51864, n_text_ctx=448, n_text_state=16, n_text_head=2, n_text_layer=1)  # fmt: skip


@pytest.mark.slow
def test_converted_checkpoint_matches_the_ct2_weights_exactly(tiny_en):
    """Every tensor openai-whisper needs is there, with the CTranslate2 values, fused projections split."""
    import whisper

    checkpoint = torch.load(tiny_en / OPENAI_CHECKPOINT, weights_only=True)
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
    missing, unexpected = model.load_state_dict(checkpoint["model_state_dict"], strict=False)
    assert unexpected == [] and missing == []
    ct2 = read_ct2_model(tiny_en / "ct2" / "model.bin")
    fused = ct2["decoder/layer_2/self_attention/linear_0/weight"]
    state = checkpoint["model_state_dict"]
    width = checkpoint["dims"]["n_text_state"]
    assert np.array_equal(state["decoder.blocks.2.attn.key.weight"].numpy(), fused[width : 2 * width])
    assert np.array_equal(
        state["decoder.blocks.0.cross_attn.value.weight"].numpy(),
        ct2["decoder/layer_0/attention/linear_1/weight"][width:],
    )
    # Whisper's key projections have no bias: CTranslate2 stores zeros there, which the split drops.
    assert not np.any(np.split(ct2["encoder/layer_0/self_attention/linear_0/bias"], 3)[1])
    assert checkpoint["dims"]["n_audio_layer"] == 4 and checkpoint["dims"]["n_text_head"] == 6


@pytest.mark.slow
def test_truncated_ct2_file_is_a_clear_error(tiny_en, tmp_path):
    broken = tmp_path / "model.bin"
    broken.write_bytes((tiny_en / "ct2" / "model.bin").read_bytes()[:5000])
    with pytest.raises(TantraError, match="not a readable CTranslate2 model"):
        read_ct2_model(broken)


def test_layer_count_ignores_layer_norm():
    from core.hearing.whisper_convert import _layer_count

    variables = {f"encoder/layer_{i}/ffn/linear_0/weight": None for i in range(2)}
    variables.update({f"decoder/layer_{i}/ffn/linear_0/weight": None for i in range(3)})
    variables["encoder/layer_norm/gamma"] = variables["decoder/layer_norm/gamma"] = None  # not a layer
    assert _layer_count(variables, "encoder") == 2 and _layer_count(variables, "decoder") == 3


@pytest.fixture
def tiny_random_checkpoint(tmp_path):
    """A 1-layer random openai-whisper model saved as a .pt: the code path of large-v3 or any local checkpoint."""
    import whisper

    torch.manual_seed(0)
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**TINY_DIMS))
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0, 0.02)  # created with torch.empty: whatever was in memory
    path = tmp_path / "tiny-random.pt"
    torch.save({"dims": TINY_DIMS, "model_state_dict": model.state_dict()}, path)
    return path


@pytest.mark.slow  # openai-whisper end to end: 5 s
def test_a_pt_checkpoint_path_runs_with_openai_whisper(tiny_random_checkpoint):
    result = run_tantra("-v", "transcribe", str(SAMPLE), "--model", str(tiny_random_checkpoint), "--beam-size", "1")
    assert result.returncode == 0, result.stderr
    assert b"speech to text: openai-whisper" in result.stderr  # a .pt goes to the engine that can read it


def test_a_pt_checkpoint_with_code_in_it_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"dims": TINY_DIMS, "model_state_dict": {}, "x": Payload()}, path)
    result = run_tantra("transcribe", str(SAMPLE), "--model", str(path))
    assert result.returncode == 1
    assert b"never unpickles" in result.stderr and b"this must never run" not in result.stdout


def test_faster_whisper_cannot_take_a_pt(tiny_random_checkpoint):
    result = run_tantra("transcribe", str(SAMPLE), "-m", str(tiny_random_checkpoint), "--engine", "faster-whisper")
    assert result.returncode == 1 and b"use --engine openai-whisper" in result.stderr
