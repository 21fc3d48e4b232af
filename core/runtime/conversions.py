"""What the model store runs after unpacking a model, by the name its ``StoreModel.convert`` gives.

Each conversion names its converter and imports it only when a pull needs it (they need torch, and ``tantra models``
must stay fast). The converters take a directory and know nothing of the store. ``layout`` is the layout a conversion
writes: when it changes, directories converted before count as outdated and are pulled again.
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from pathlib import Path

HUB_SOURCE = "source"
"""Where a hub model's checkpoint is copied inside the directory being pulled, for its conversion to read."""


@dataclass(frozen=True)
class Conversion:
    converter: str
    """``"module:function"``, imported when a pull needs it: the function converts the unpacked files in a
    directory, in place. By name, so that the store (beneath the roles) never imports a role."""
    layout: int
    hub_source: bool = False
    """The converter reads the hub checkpoint copied into ``HUB_SOURCE`` and writes beside it; the copy goes after."""

    def run(self, path: Path) -> None:
        module, _, function = self.converter.partition(":")
        convert = getattr(importlib.import_module(module), function)
        if self.hub_source:
            convert(path / HUB_SOURCE, path)
            shutil.rmtree(path / HUB_SOURCE)
        else:
            convert(path)


CONVERSIONS: dict[str, Conversion] = {
    "whisper-ct2": Conversion("core.hearing.whisper_convert:convert_store_dir", 1),
    # 3: INT8 weights saved output-major (the kernel's); 4: the GGUF's own bits (4-bit for the default's Q4_1)
    "spikingbrain-gguf": Conversion("core.language.spikingbrain_convert:convert_store_dir", 4),
    "spikingbrain-hf": Conversion("core.language.spikingbrain_convert:convert_hf_dir", 3, hub_source=True),
    "efficientnet-onnx": Conversion("core.vision.vision_convert:convert_store_dir", 1),
    "minilm-onnx": Conversion("core.memory.embedder_convert:convert_store_dir", 1),
}
