"""``tantra describe IMAGE... | -``: what each image shows, in a line for a person or as JSON."""

from __future__ import annotations

import json
import sys

import typer

from core.errors import TantraError
from tantra_cli.common import EXIT_FAILED, error, settings_of, user_errors


def _percent(score: float) -> str:
    return f"{score:.0%}" if score >= 0.01 else "<1%"


def sentence(labels) -> str:
    """A line a person reads: as sure as the classifier is, and no surer."""
    best = labels[0]
    if best.score >= 0.6:
        lead = f"Looks like {best.name} ({_percent(best.score)})"
    elif best.score >= 0.25:
        lead = f"Probably {best.name} ({_percent(best.score)})"
    else:
        lead = f"Not sure: perhaps {best.name} ({_percent(best.score)})"
    others = [label for label in labels[1:3] if label.score >= 0.05]
    if others:
        lead += ", or " + " or ".join(f"{label.name} ({_percent(label.score)})" for label in others)
    return lead + "."


def describe(
    ctx: typer.Context,
    images: list[str] = typer.Argument(..., metavar="IMAGE... | -", help="Image files (or - for stdin)."),
    top: int = typer.Option(5, "--top", "-k", min=1, max=20, help="How many labels to keep."),
    ocr: bool = typer.Option(None, "--ocr/--no-ocr", help="Read text in images (default on; off if --low-resource)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image: labels, text, size, format."),
) -> None:
    """Describe images with the local ImageNet classifier (EfficientNet-Lite0): PNG, JPEG, GIF, WebP, BMP, TIFF."""
    settings = settings_of(ctx)
    with user_errors(settings):
        if images.count("-") > 1:
            raise TantraError("stdin can be read once: give - only once")
        if "-" in images and (sys.stdin is None or sys.stdin.isatty()):
            raise TantraError("- reads an image from stdin, but stdin is a terminal: pipe an image in")

        from config.model_config import MODEL_CONFIG
        from core.errors import BadInput
        from core.model_loader import ModelLoader
        from encoders.image_io import load_image
        from encoders.vision import load_classifier

        read_text = (not settings.low_resource) if ocr is None else ocr
        classifier = reader = None
        failed = 0
        for source in images:
            try:
                image, info = load_image(sys.stdin.buffer.read() if source == "-" else source)
            except BadInput as bad:
                error(str(bad))
                failed += 1
                continue
            classifier = classifier or load_classifier(ModelLoader(MODEL_CONFIG, settings))
            seen = classifier.look(image, top)
            if read_text:
                from encoders.ocr import TextReader

                reader = reader or TextReader()
            lines = reader.read(image) if read_text else []
            if as_json:
                print(json.dumps({
                    "image": info.label, "format": info.format, "width": info.width, "height": info.height,
                    "frames": info.frames, "mode": info.mode, "model": classifier.name,
                    "labels": [{"name": label.name, "score": label.score} for label in seen.labels],
                    "text": [{"text": line.text, "score": line.score, "box": line.box} for line in lines],
                }, ensure_ascii=False), flush=True)  # fmt: skip
            else:
                prefix = f"{info.label}: " if len(images) > 1 else ""
                said = f" Text in the image: {' / '.join(line.text for line in lines)}" if lines else ""
                print(prefix + sentence(seen.labels) + said, flush=True)
        if failed:
            raise typer.Exit(EXIT_FAILED)
