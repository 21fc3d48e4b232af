"""Images in: a path or stdin bytes -> an RGB Pillow image, or a one-line error a person can act on.

Pillow decodes lazily and trusts the declared size, so every check that protects memory happens before the pixels
are read: the pixel limit turns a decompression bomb into an error instead of gigabytes of allocation.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from config.errors import BadInput

MAX_PIXELS = 64_000_000  # 8000 x 8000: larger than any camera photo, far below what would exhaust memory


@dataclass(frozen=True)
class ImageInfo:
    label: str
    format: str
    width: int
    height: int
    frames: int
    mode: str
    """The mode the file was stored in (RGB, CMYK, I;16, P, ...), before conversion to RGB."""


@cache
def _limit_pillow() -> None:
    """Pillow's own bomb check at our limit: above it Pillow warns, at twice it raises (both are handled in
    ``load_image``). Set once per process, the first time an image is opened, never per call."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


# What Pillow may open: the raster formats its own decoders read (a camera's MPO opens as JPEG). Never EPS, which
# Pillow hands to Ghostscript: an image sent to `tantra serve` must not run another program.
FORMATS = ("PNG", "JPEG", "JPEG2000", "GIF", "WEBP", "AVIF", "BMP", "DIB", "TIFF", "ICO", "PPM", "TGA", "QOI", "PSD",
           "SGI", "PCX")  # fmt: skip


def check_image_file(path: Path, label: str) -> None:
    """One line for a path that cannot hold an image: a directory, nothing there, an empty file."""
    if path.is_dir():
        raise BadInput(f"{label} is a directory, not an image")
    if not path.exists():
        raise BadInput(f"{label}: no such file")
    if path.stat().st_size == 0:
        raise BadInput(f"{label} is empty (0 bytes)")


def load_image(source: str | Path | bytes, label: str | None = None):
    """``(PIL.Image in RGB, ImageInfo)``; the first frame of an animation, turned upright by its EXIF orientation."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _limit_pillow()
    label = label or ("stdin" if isinstance(source, bytes) else str(source))
    if not isinstance(source, bytes):
        check_image_file(Path(source), label)
    elif not source:
        raise BadInput("stdin is empty: pipe an image in")
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=FORMATS)
        if image.width * image.height > MAX_PIXELS:
            raise BadInput(
                f"{label} declares {image.width}x{image.height} pixels, over the limit of {MAX_PIXELS:,}: refused"
            )
        info = ImageInfo(label, image.format or "unknown", image.width, image.height,
                         getattr(image, "n_frames", 1), image.mode)  # fmt: skip
        image.seek(0)
        image = ImageOps.exif_transpose(image)  # loads the pixels
        rgb = _to_rgb(image)
    except BadInput:
        raise
    except Image.DecompressionBombError:
        raise BadInput(f"{label} declares a size over the limit of {MAX_PIXELS:,} pixels: refused") from None
    except UnidentifiedImageError:
        raise BadInput(f"{label} is not an image Pillow can read (PNG, JPEG, GIF, WebP, BMP, TIFF)") from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise BadInput(f"{label} is damaged or truncated ({error})") from None
    return rgb, info


def _to_rgb(image):
    """RGB for any mode: 16-bit greyscale scaled down (not clipped), transparency over white, CMYK converted."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        values = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        image = Image.fromarray(np.clip(values / peak * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg"}


def video_frames(path: Path, count: int = 4) -> list[tuple[float, bytes]]:
    """``count`` evenly spaced frames of a video as ``(seconds, PNG bytes)``, through the ffmpeg binary that
    imageio-ffmpeg bundles; a BadInput error when ``path`` holds no video stream."""
    import subprocess

    from core.runtime.files import ffmpeg_exe, ffmpeg_report

    report, duration = ffmpeg_report(path)
    if " Video: " not in report:
        raise BadInput(f"{path}: no video stream in it")
    duration = duration or 0.0
    frames = []
    for index in range(count if duration > 0 else 1):
        at = duration * (index + 0.5) / count
        grab = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", f"{at:.3f}",
                               "-i", str(path), "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"],
                              capture_output=True, check=False)  # fmt: skip
        if grab.returncode == 0 and grab.stdout:
            frames.append((round(at, 2), grab.stdout))
    if not frames:
        raise BadInput(f"{path}: ffmpeg could not read a frame from it")
    return frames
