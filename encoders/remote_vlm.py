"""Long-VITA (or any vision-language model) behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

vLLM, llama.cpp's server and Ollama all accept an image as a base64 ``image_url`` part of a user message, so one
client serves them all. Only the standard library is used: no SDK to install for an optional backend.
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from core.errors import ModelUnavailable, TantraError

RETRIES = 2  # after the first try: a server that restarts or is briefly overloaded gets two more chances
_RETRY_STATUS = {429, 500, 502, 503, 504}


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
        return _answer_text(self._post("/chat/completions", body))

    def _post(self, path: str, body: dict) -> dict:
        url = self.base_url.rstrip("/") + path
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as error:
                if error.code in _RETRY_STATUS and not last:
                    time.sleep(0.5 * 2**attempt)
                    continue
                detail = error.read(300).decode(errors="replace").strip()
                raise TantraError(f"the vision server at {self.base_url} answered {error.code} ({detail})") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if not last:
                    time.sleep(0.5 * 2**attempt)
                    continue
                reason = getattr(error, "reason", error)
                if isinstance(reason, TimeoutError) or isinstance(error, TimeoutError):
                    reason = f"no answer within {self.timeout:g} s"
                raise ModelUnavailable(f"the vision server at {self.base_url} cannot be reached ({reason})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise TantraError(f"the vision server at {self.base_url} answered something that is not JSON") from None


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
    """The configured remote model (``TANTRA_VLM_URL`` ...), or None when no server is configured."""
    if not settings.vlm_url:
        return None
    return RemoteVLM(settings.vlm_url, settings.vlm_model, settings.vlm_api_key, float(settings.vlm_timeout))
