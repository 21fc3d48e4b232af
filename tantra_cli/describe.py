"""``tantra describe IMAGE... | -``: what each image shows, in a line for a person or as JSON."""

from __future__ import annotations

import json
import sys
from enum import Enum

import typer

from config.errors import TantraError
from config.model_config import VISION_ENGINES
from tantra_cli.common import EXIT_FAILED, error, settings_of, user_errors

Engine = Enum("Engine", {name: name for name in VISION_ENGINES}, type=str)
def _inputs(images: list[str]):
    """``(source, (image, info) or the BadInput that stopped it)`` for each image, and for each of a few evenly spaced
    frames of a video file."""
    from pathlib import Path

    from config.errors import BadInput
    from core.vision.image_io import VIDEO_SUFFIXES, load_image, video_frames

    for source in images:
        try:
            if source != "-" and Path(source).suffix.lower() in VIDEO_SUFFIXES and Path(source).is_file():
                for seconds, frame in video_frames(Path(source)):
                    yield source, load_image(frame, f"{source} at {seconds:g} s")
                continue
            yield source, load_image(sys.stdin.buffer.read() if source == "-" else source)
        except BadInput as bad:
            yield source, bad


def describe(
    ctx: typer.Context,
    images: list[str] = typer.Argument(
        ..., metavar="IMAGE... | -", help="Image files (or - for stdin); a video gives a few evenly spaced frames."
    ),
    top: int = typer.Option(5, "--top", "-k", min=1, max=20, help="How many labels to keep."),
    ocr: bool = typer.Option(None, "--ocr/--no-ocr", help="Read text in images (default on; off if --low-resource)."),
    prompt: str = typer.Option(
        None, "--prompt", "-p", help="A question about the image: the remote model answers, else SpikingBrain."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image: labels, text, size, format."),
    engine: Engine = typer.Option(None, "--engine", help="Default: onnxruntime (faster, lighter), else torch."),
) -> None:
    """Describe images with the local ImageNet classifier (EfficientNet-Lite0) and OCR: PNG, JPEG, GIF, WebP, ..."""
    settings = settings_of(ctx)
    with user_errors(settings):
        if images.count("-") > 1:
            raise TantraError("stdin can be read once: give - only once")
        if "-" in images and (sys.stdin is None or sys.stdin.isatty()):
            raise TantraError("- reads an image from stdin, but stdin is a terminal: pipe an image in")

        from config.errors import BadInput
        from config.model_config import MODEL_CONFIG
        from core.model_loader import ModelLoader
        from core.vision.describer import ImageDescriber

        # With --server the server's models see the images, and its language model answers a --prompt.
        describer = ImageDescriber(ModelLoader(MODEL_CONFIG, settings), ocr, engine.value if engine else None)
        failed = 0
        for source, loaded in _inputs(images):
            if isinstance(loaded, BadInput):  # reported, and the other images still go on
                error(str(loaded))
                failed += 1
                continue
            facts = describer.facts(loaded, top)
            if describer.remote is not None or prompt:
                facts["answer"] = describer.answer(loaded[0], facts, prompt)
            _show(facts, source, len(images) > 1, as_json)
        if failed:
            raise typer.Exit(EXIT_FAILED)


def _show(facts: dict, source: str, several: bool, as_json: bool) -> None:
    from core.vision.describer import facts_sentence

    if as_json:
        print(json.dumps(facts, ensure_ascii=False), flush=True)
        return
    said = facts.get("answer") or facts_sentence(facts)
    several = several or facts["image"] != source
    print((f"{facts['image']}: " if several else "") + said, flush=True)
