"""``tantra bench describe``: seconds per image, load time and peak memory of the local vision backend."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from config.model_config import MODEL_CONFIG
from config.settings import Settings
from core.benchmark import measure_child


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
    from core.model_loader import ModelLoader
    from encoders.image_io import load_image
    from encoders.ocr import TextReader
    from encoders.vision import load_classifier

    with tempfile.TemporaryDirectory() as folder:
        photos = _photos(Path(folder))
        env = {**os.environ, "TANTRA_HOME": str(settings.home)}
        base = [sys.executable, "-m", "tantra_cli", "describe"]
        cold = {
            "labels": measure_child([*base, "--no-ocr", str(photos[0])], env),
            "labels_and_ocr": measure_child([*base, str(photos[0])], env),
        }
        start = time.perf_counter()
        classifier = load_classifier(ModelLoader(MODEL_CONFIG, settings))
        load_seconds = time.perf_counter() - start
        images = [load_image(path)[0] for path in photos]
        classifier.look(images[0])  # warm-up
        labels = statistics.median(_seconds(lambda im=im: classifier.look(im)) for im in images * repeats)
        start = time.perf_counter()
        reader = TextReader()
        ocr_load = time.perf_counter() - start
        reader.read(images[0])
        ocr = statistics.median(_seconds(lambda im=im: reader.read(im)) for im in images)
    return {
        "backend": classifier.name,
        "images": len(photos),
        "load_seconds": round(load_seconds, 3),
        "labels_seconds_per_image": round(labels, 4),
        "ocr_load_seconds": round(ocr_load, 3),
        "ocr_seconds_per_image": round(ocr, 4),
        "cold_command": {name: {"seconds": round(run.seconds, 2), "peak_rss_mb": run.peak_rss_mb}
                         for name, run in cold.items()},  # fmt: skip
        "targets": {
            "labels_under_0.1s_per_image": labels < 0.1,
            "resident_memory_under_250mb": cold["labels"].peak_rss_mb < 250,
        },
    }


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
