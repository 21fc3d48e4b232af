"""Text in images: PP-OCRv4's detector and recognizer (ONNX, shipped in ``rapidocr-onnxruntime``'s wheel)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Measured on scikit-image samples: texture read as text scores 0.59-0.63 ("O" in a cat's fur), printed lines 0.93-1.0.
MIN_CONFIDENCE = 0.7


@dataclass(frozen=True)
class TextLine:
    text: str
    score: float
    box: list[list[int]]
    """Four corners, clockwise from top left, in image pixels."""


class TextReader:
    """``TextReader().read(image)`` -> the lines of text in a Pillow image, top to bottom."""

    name = "rapidocr (PP-OCRv4)"

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.engine = RapidOCR()

    def read(self, image) -> list[TextLine]:
        found, _ = self.engine(np.asarray(image))
        lines = [
            TextLine(text.strip(), round(float(score), 4), [[round(x), round(y)] for x, y in box])
            for box, text, score in (found or [])
            if text.strip() and float(score) >= MIN_CONFIDENCE
        ]
        return sorted(lines, key=lambda line: (line.box[0][1], line.box[0][0]))
