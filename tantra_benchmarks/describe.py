"""``tantra bench describe``: seconds per image, load time and peak memory of each local vision engine."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from config.model_config import VISION_ENGINES
from config.settings import Settings
from tantra_benchmarks.common import TANTRA, measure_child, model_loader, seconds, tantra_env


def _photos(folder: Path) -> list[Path]:
    """Photographs to look at: scikit-image's samples where it is installed, else generated scenes."""
    import numpy as np
    from PIL import Image

    try:
        import skimage.data

        arrays = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    except ImportError:
        rng = np.random.default_rng(0)
        arrays = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    paths = []
    for index, array in enumerate(arrays):
        paths.append(folder / f"photo{index}.jpg")
        Image.fromarray(array).convert("RGB").save(paths[-1], quality=90)
    return paths


def bench_describe(settings: Settings, repeats: int = 5) -> dict:
    """Each engine (onnxruntime, torch) on the same photos: load time (importing its library included), median
    seconds per image, and a whole ``tantra describe --no-ocr`` command's time and peak memory; then OCR, and the
    commands a person runs most (with OCR, and ``--low-resource``)."""
    from core.vision.image_io import load_image
    from core.vision.ocr import TextReader

    with tempfile.TemporaryDirectory() as folder:
        photos = _photos(Path(folder))
        images = [load_image(path)[0] for path in photos]
        env = tantra_env(settings)

        def cold(*args: str) -> dict:
            """One whole ``tantra ...`` command on the first photo, as a person would run it."""
            run = measure_child([*TANTRA, *args, str(photos[0])], env)
            return {"seconds": round(run.seconds, 2), "peak_rss_mb": run.peak_rss_mb}

        engines = {}
        for engine in VISION_ENGINES:  # onnxruntime first, so its load time does not include importing torch
            loader = model_loader(settings)  # a new one per engine, so each loads afresh
            start = time.perf_counter()
            classifier = loader.load_vision(engine)
            load_seconds = time.perf_counter() - start
            classifier.look(images[0])  # warm-up
            per_image = statistics.median(seconds(lambda im=im: classifier.look(im)) for im in images * repeats)
            engines[engine] = {
                "load_seconds": round(load_seconds, 3),
                "labels_seconds_per_image": round(per_image, 4),
                "cold_command": cold("describe", "--no-ocr", "--engine", engine),
            }
        commands = {
            "describe": cold("describe"),
            "--low-resource describe": cold("--low-resource", "describe"),
        }
        start = time.perf_counter()
        reader = TextReader()
        ocr_load = time.perf_counter() - start
        reader.read(images[0])
        ocr = statistics.median(seconds(lambda im=im: reader.read(im)) for im in images)
    default = engines[VISION_ENGINES[0]]
    return {
        "model": classifier.name,
        "images": len(photos),
        "engines": engines,
        "default_engine": VISION_ENGINES[0],
        "ocr_load_seconds": round(ocr_load, 3),
        "ocr_seconds_per_image": round(ocr, 4),
        "cold_commands": commands,
        "targets": {
            "labels_under_0.1s_per_image": default["labels_seconds_per_image"] < 0.1,
            "resident_memory_under_250mb": default["cold_command"]["peak_rss_mb"] < 250,
        },
    }
