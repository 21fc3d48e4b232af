"""Images in a chat: the image files a message mentions, and the record a chat keeps of each one.

SpikingBrain sees no pixels: an image reaches it as ``[Image NAME: what it shows]``, a line the describer writes.
``core.language.chat_session`` finds the paths in every message; ``/image`` (``core.language.chat_commands``) attaches
one by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.memory.chat_log import ImageRecord

# An image path in a message, as `ollama run` picks them up: quoted, or a word ending in an image extension.
IMAGE_EXTENSIONS = r"\.(?:png|jpe?g|gif|webp|bmp|tiff?)"
_IMAGE_PATH = re.compile(
    rf"""["']([^"']+{IMAGE_EXTENSIONS})["']|(?<!\S)(\S+?{IMAGE_EXTENSIONS})(?=[\s,;:!?)]|\.?$|\.\s)""", re.IGNORECASE
)


def image_paths_in(text: str) -> list[Path]:
    """The paths of existing image files that ``text`` mentions, in order, each once."""
    found: list[Path] = []
    for match in _IMAGE_PATH.finditer(text):
        path = Path(match.group(1) or match.group(2)).expanduser()
        if path.is_file() and path not in found:
            found.append(path)
    return found


def image_record(describer, path: Path) -> ImageRecord:
    """The image as a chat keeps it: its path and sha256 for the log, and ``[Image NAME: what it shows]``, the line
    the model reads in its place."""
    from core.runtime.files import sha256_of

    facts = describer.note(path)  # first: it says clearly what is wrong with a missing or broken file
    return ImageRecord(str(Path(path).resolve()), sha256_of(Path(path)), facts)
