"""Long-VITA (or any vision-language model) behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

vLLM, llama.cpp's server and Ollama all accept an image as a base64 ``image_url`` part of a user message, so one
client serves them all. Only the standard library is used: no SDK to install for an optional backend.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

from config.errors import BadInput, TantraError
from core.runtime.openai_http import Endpoint


@dataclass(frozen=True)
class RemoteVLM:
    base_url: str
    """Up to and including ``/v1``, e.g. http://gpu-box:8000/v1."""
    model: str
    api_key: str = field(default="", repr=False)
    """Sent as a bearer token; kept out of repr, errors and logs."""
    timeout: float = 60.0

    name = "long-vita-remote"

    def ask(self, image, question: str, max_tokens: int = 300) -> str:
        """The model's answer to ``question`` about a Pillow ``image``."""
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)  # photos are smaller as JPEG; the model never needs lossless pixels
        data_url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        body = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": question},
                {"type": "image_url", "image_url": {"url": data_url}},
            ]}],
        }  # fmt: skip
        endpoint = Endpoint(self.base_url, self.api_key, self.timeout, "vision server")
        try:
            return _answer_text(endpoint.post_json("/chat/completions", body))
        except BadInput as refused:  # a server that takes no images refuses them: the local models answer instead
            raise TantraError(str(refused)) from None


def _answer_text(reply: dict) -> str:
    """The assistant's text of a chat completion, whether ``content`` is a string or a list of parts."""
    try:
        content = reply["choices"][0]["message"]["content"]
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TantraError("the vision server's answer is not a chat completion (no choices[0].message)") from None
    if not isinstance(content, str) or not content.strip():
        raise TantraError("the vision server answered with no text")
    return content.strip()


def from_settings(settings) -> RemoteVLM | None:
    """The configured remote model (``TANTRA_VISION_URL`` ...), or None when no server is configured."""
    if not settings.vision_url:
        return None
    return RemoteVLM(settings.vision_url, settings.vision_model, settings.vision_api_key,
                     float(settings.vision_timeout))  # fmt: skip
