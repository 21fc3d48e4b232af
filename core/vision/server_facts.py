"""An image's labels and text read by a ``tantra serve`` (``POST /v1/tantra/describe``, with ``--server``): its
classifier and OCR, warm, in place of this process's. OpenAI's API has no such route, so this is Tantra's own."""

from __future__ import annotations

import io
import json

from config.errors import BadInput, TantraError
from core.runtime.openai_http import Endpoint


def seen_by_server(api: Endpoint, image, label: str, top: int, ocr: bool) -> dict:
    """``{"model", "engine", "labels", "text"}`` for ``image`` (a PIL image, sent as PNG: lossless, and decoded
    here already, so the server reads exactly what the local models would). ``ModelUnavailable`` when the server
    cannot be reached; a refusal names the image as a local one would."""
    png = io.BytesIO()
    image.save(png, format="PNG")
    fields = {"top": str(top), "ocr": "true" if ocr else "false"}
    name = label.replace('"', "'").replace("\r", " ").replace("\n", " ")
    try:
        with api.post_form("/tantra/describe", fields, {"file": (name, png.getvalue(), "image/png")}) as response:
            raw = api.read(response)
    except BadInput as refused:
        raise BadInput(f"{label}: {str(refused).removeprefix(f'{name}: ')}") from None
    try:
        facts = json.loads(raw)
        return {key: facts[key] for key in ("model", "engine", "labels", "text")}
    except (ValueError, KeyError, TypeError):
        raise TantraError(f"the {api.label} answered something that is not an image's facts") from None
