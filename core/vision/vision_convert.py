"""EfficientNet-Lite0's export to ONNX at pull time (the network itself is ``core/vision/lite0_network.py``).

The graph gives both outputs of one pass: the class probabilities, and the 1280-d pooled features behind them (for
the 768-d embedding). It takes any image size (the low-resource path feeds 160 px) and runs on onnxruntime
without torch, which is why it is the default: several times faster per image and half the memory
(docs/BENCHMARKS.md). The torch network stays for GPUs and as the fallback.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from config.errors import TantraError
from core.vision.image_classifier import ONNX_GRAPH, TORCH_WEIGHTS
from core.vision.lite0_network import Lite0Outputs

TOLERANCE = 1e-4
"""Largest difference allowed between the exported graph's probabilities and torch's on the check input."""


def convert_store_dir(path: Path) -> None:
    """Write ``model.onnx`` beside ``model.pth``, and check that onnxruntime gives what torch gives."""
    import onnxruntime

    network = Lite0Outputs(path / TORCH_WEIGHTS)
    check = torch.rand(1, 3, 200, 240, generator=torch.Generator().manual_seed(0)) * 2 - 1  # not the traced size
    with torch.no_grad():
        expected = network(check)[0].numpy()
    try:
        import onnx  # noqa: F401  (the exporter needs it; imported here to say so plainly when it is missing)
    except ImportError:
        raise TantraError("the onnx package is needed to convert EfficientNet-Lite0: pip install onnx") from None
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, but the only one that needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network, (torch.zeros(1, 3, 224, 224),), str(path / ONNX_GRAPH), dynamo=False, opset_version=17,
            input_names=["pixels"], output_names=["probabilities", "features"],
            dynamic_axes={"pixels": {0: "batch", 2: "height", 3: "width"}},
        )  # fmt: skip
    session = onnxruntime.InferenceSession(str(path / ONNX_GRAPH), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"pixels": check.numpy()})[0]
    difference = float(np.abs(got - expected).max())
    if difference > TOLERANCE:
        raise TantraError(f"EfficientNet-Lite0's ONNX export differs from torch by {difference:.2g}; not kept")
