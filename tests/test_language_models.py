"""GPT-2's tokenizer from whisper's tiktoken file, GPT-2 checkpoints through the store, and the fallback chain."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, run_tantra
from tests.lazy import torch


def test_gpt2_tokenizer_is_exactly_tiktokens():
    from tokenizers import Tokenizer
    from whisper.tokenizer import get_encoding

    from core.language.spikingbrain_convert import gpt2_tokenizer_json

    ours, theirs = Tokenizer.from_str(gpt2_tokenizer_json()), get_encoding("gpt2")
    texts = [
        "Hello world", "  leading spaces,\ttabs\n\nand newlines ", "It's 2026, isn't it? 1234567 3.14159 they'll",
        "Ünïcödé — 日本語のテキスト 🌍🚀 naïve café", (ROOT / "samples" / "prose.txt").read_text(), "x" * 300,
        "<|endoftext|> after the end",
    ]  # fmt: skip
    for text in texts:
        assert ours.encode(text, add_special_tokens=False).ids == theirs.encode(text, allowed_special="all")
    assert ours.token_to_id("<|endoftext|>") == 50256


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    """A GPT-2 checkpoint directory as the hub has them (config.json + model.safetensors), small and random."""
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_positions=128, n_embd=64, n_layer=2, n_head=4)  # GPT-2's own vocabulary of 50,257
    model = GPT2LMHeadModel(config)
    source = tmp_path_factory.mktemp("gpt2-tiny")
    (source / "config.json").write_text(json.dumps(config.to_dict()))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied
    save_file(state, str(source / "model.safetensors"))
    return source


@pytest.mark.slow
def test_pull_from_a_directory_then_chat_with_it(tiny_gpt2, tmp_path):
    env = {"TANTRA_HOME": str(tmp_path)}
    result = run_tantra("models", "pull", "gpt2", "--from", str(tiny_gpt2), env=env)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "models" / "gpt2" / "manifest.json").read_text())
    assert {"model.safetensors", "spiking-int8.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    rows = {row["model"]: row for row in json.loads(run_tantra("models", "--json", env=env).stdout)}
    assert rows["gpt2"]["status"] == "ready" and rows["distilgpt2"]["status"] == "not pulled"
    result = run_tantra("chat", "-m", "gpt2", "-n", "5", "--json", "Hello", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["model"] == "gpt2" and answer["spiking"] is True and answer["completion_tokens"] >= 1


@pytest.mark.slow
def test_the_chain_falls_back_to_gpt2_and_low_resource_prefers_distilgpt2(tiny_gpt2, tmp_path):
    """No SmolLM2 (not pulled, no index to pull it from): SpikingBrain says so, and GPT-2 answers."""
    empty_index = tmp_path / "index"
    empty_index.mkdir()
    env = {"TANTRA_HOME": str(tmp_path / "home"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty_index)}
    result = run_tantra("chat", "-n", "3", "--json", "Hello", env=env)
    assert result.returncode == 1 and b"no language model can run here" in result.stderr
    assert b"gpt2 (spiking): not pulled" in result.stderr and b"Traceback" not in result.stderr
    for name in ("gpt2", "distilgpt2"):
        assert run_tantra("models", "pull", name, "--from", str(tiny_gpt2), env=env).returncode == 0
    result = run_tantra("chat", "-n", "3", "--json", "Hello", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "gpt2"
    assert b"spikingbrain-smollm2-135m (spiking) cannot be used" in result.stderr
    result = run_tantra("--low-resource", "chat", "-n", "3", "--json", "Hello", env=env)
    assert result.returncode == 0 and json.loads(result.stdout)["model"] == "distilgpt2"


@pytest.mark.slow
def test_convert_a_checkpoint_directory_and_chat_from_it(tiny_gpt2, tmp_path):
    out = tmp_path / "converted"
    result = run_tantra("models", "convert", str(tiny_gpt2), str(out))
    assert result.returncode == 0, result.stderr
    result = run_tantra("chat", "--model", str(out), "--no-spiking", "-n", "3", "--json", "Hi")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spiking"] is False
    result = run_tantra("models", "convert", str(tmp_path / "nothing-here"), str(out))
    assert result.returncode == 1 and b"neither a checkpoint directory nor a hub id" in result.stderr
    result = run_tantra("chat", "--model", "nonsense", "Hi")
    assert result.returncode == 1 and b"unknown language model 'nonsense'" in result.stderr
