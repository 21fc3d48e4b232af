"""What the model store runs after unpacking a model, by the name its ``StoreModel.convert`` gives.

Each conversion imports its converter only when a pull needs it (they need torch, and ``tantra models`` must stay
fast). The converters take a directory and know nothing of the store. ``layout`` is the layout a conversion writes:
when it changes, directories converted before count as outdated and are pulled again.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HUB_SOURCE = "source"
"""Where a hub model's checkpoint is copied inside the directory being pulled, for its conversion to read."""


@dataclass(frozen=True)
class Conversion:
    run: Callable[[Path], None]
    """Converts the unpacked files in a directory, in place."""
    layout: int


def _whisper_ct2(path: Path) -> None:
    from core.hearing.whisper_convert import convert_store_dir

    convert_store_dir(path)


def _spikingbrain_gguf(path: Path) -> None:
    from core.language.spikingbrain_convert import convert_store_dir

    convert_store_dir(path)


def _spikingbrain_hf(path: Path) -> None:
    from core.language.spikingbrain_convert import convert_hf_dir

    convert_hf_dir(path / HUB_SOURCE, path)
    shutil.rmtree(path / HUB_SOURCE)


def _efficientnet_onnx(path: Path) -> None:
    from core.vision.vision_convert import convert_store_dir

    convert_store_dir(path)


def _minilm_onnx(path: Path) -> None:
    from core.memory.embedder_convert import convert_store_dir

    convert_store_dir(path)


CONVERSIONS: dict[str, Conversion] = {
    "whisper-ct2": Conversion(_whisper_ct2, 1),
    "spikingbrain-gguf": Conversion(_spikingbrain_gguf, 3),  # 3: INT8 weights saved output-major (the kernel's)
    "spikingbrain-hf": Conversion(_spikingbrain_hf, 3),
    "efficientnet-onnx": Conversion(_efficientnet_onnx, 1),
    "minilm-onnx": Conversion(_minilm_onnx, 1),
}
