"""Files every role reads: their sha256 (the store checks downloads with it, the log keeps it for each image), and
ffmpeg (imageio-ffmpeg's own binary), which decodes the audio and video formats Python cannot."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ffmpeg_exe() -> str:
    import imageio_ffmpeg  # ships its own ffmpeg binary, so no system ffmpeg is needed

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_report(path: Path) -> tuple[str, float | None]:
    """What ``ffmpeg -i`` says of ``path`` (its streams, on stderr) and the duration in seconds, when it knows it."""
    report = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, errors="replace"
    ).stderr
    for line in report.splitlines():
        line = line.strip()
        if line.startswith("Duration:") and "N/A" not in line.split(",")[0]:
            hours, minutes, seconds = line.split(",")[0].split()[1].split(":")
            return report, int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return report, None
