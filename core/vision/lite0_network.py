"""EfficientNet-Lite0 as the torch network Tantra runs: the two outputs it uses, from one pass. ``TorchClassifier``
runs it; ``core/vision/vision_convert.py`` exports it to the ONNX graph that onnxruntime runs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class Lite0Outputs(nn.Module):
    """``pixels`` (batch, 3, H, W) in [-1, 1] -> (class probabilities (batch, 1000), pooled features (batch, 1280))."""

    def __init__(self, weights: Path) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.network = EfficientNet.from_name("efficientnet-lite0")
        self.network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.eval()

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.network.extract_features(pixels).mean(dim=(2, 3))  # (batch, 1280)
        return torch.softmax(self.network._fc(features), dim=-1), features
