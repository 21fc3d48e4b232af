"""Vision: real photographs through the real classifier, the embedding, and images that are not what they say."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, run_tantra

pytestmark = pytest.mark.slow  # every test here runs the real models


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """scikit-image's sample photographs, saved as a person's files would be."""
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.chelsea()).save(folder / "chelsea.jpg", quality=90)
    Image.fromarray(skimage.data.coffee()).save(folder / "coffee.png")
    return folder


def test_real_photos_are_a_cat_and_an_espresso(photos):
    result = run_tantra("describe", "--json", "--top", "3", str(photos / "chelsea.jpg"), str(photos / "coffee.png"))
    assert result.returncode == 0, result.stderr
    cat, coffee = (json.loads(line) for line in result.stdout.splitlines())
    assert any("cat" in label["name"] for label in cat["labels"]), cat["labels"]
    assert any(word in label["name"] for label in coffee["labels"] for word in ("espresso", "cup")), coffee["labels"]
    assert cat["format"] == "JPEG" and (cat["width"], cat["height"]) == (451, 300)
    scores = [label["score"] for label in coffee["labels"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001


@pytest.mark.parametrize("engine", ["onnxruntime", "torch"])
def test_low_resource_still_tells_the_truth_on_either_engine(photos, engine):
    result = run_tantra("--low-resource", "describe", "--json", "--top", "3", "--engine", engine,
                        str(photos / "chelsea.jpg"), str(photos / "coffee.png"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    cat, coffee = (json.loads(line) for line in result.stdout.splitlines())
    assert cat["engine"] == engine and cat["text"] == []  # 160 px and no OCR
    assert any("cat" in label["name"] for label in cat["labels"]), cat["labels"]
    assert coffee["labels"][0]["name"] == "espresso", coffee["labels"]


def test_the_sentence_hedges_by_confidence(photos):
    result = run_tantra("describe", str(photos / "coffee.png"))
    assert result.returncode == 0 and result.stdout.decode().startswith("Looks like espresso (")
    from core.vision.describer import Label, sentence

    assert sentence([Label("kite", 0.12), Label("vulture", 0.01)]) == "Not sure: perhaps kite (12%)."


def test_vision_encoder_embeds_similar_images_close(photos, settings):
    from config.model_config import MODEL_CONFIG
    from core.model_loader import ModelLoader
    from encoders.vision import VisionEncoder

    encoder = VisionEncoder(embed_dim=768, loader=ModelLoader(MODEL_CONFIG, settings))
    cat = encoder(photos / "chelsea.jpg")
    assert cat.shape == (768,) and float(cat.norm()) == pytest.approx(1.0, abs=1e-5)
    flipped = Image.open(photos / "chelsea.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert float(cat @ encoder(flipped)) > float(cat @ encoder(photos / "coffee.png")) + 0.2


def test_onnx_and_torch_engines_see_the_same(photos, settings):
    from config.model_config import MODEL_CONFIG
    from core.model_loader import ModelLoader
    from core.vision.image_io import load_image

    loader = ModelLoader(MODEL_CONFIG, settings)
    image, _ = load_image(photos / "chelsea.jpg")
    onnx, torch = (loader.load_vision(engine).look(image, top=3) for engine in ("onnxruntime", "torch"))
    assert [label.name for label in onnx.labels] == [label.name for label in torch.labels]
    assert [label.score for label in onnx.labels] == pytest.approx([label.score for label in torch.labels], abs=2e-3)
    assert onnx.features.shape == (1280,) and np.abs(onnx.features - torch.features).max() < 1e-3


def test_describing_an_image_never_loads_torch(photos):
    code = (
        "import atexit, sys; atexit.register(lambda: print('torch' in sys.modules, file=sys.stderr)); "
        f"sys.argv = ['tantra', 'describe', '--no-ocr', {str(photos / 'coffee.png')!r}]; "
        "from tantra_cli.app import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "espresso" in result.stdout, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "False"


def test_a_corrupt_onnx_graph_is_said_and_torch_takes_over(photos, settings, tmp_path):
    from config.model_config import find_store_model
    from core.runtime import model_store

    pulled = model_store.ensure(find_store_model("efficientnet-lite0"), settings)
    shutil.copytree(pulled, tmp_path / "models" / "efficientnet-lite0")
    graph = tmp_path / "models" / "efficientnet-lite0" / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # rotted on disk: same size, other bytes
    graph.write_bytes(bytes(data))
    result = run_tantra("describe", "--no-ocr", str(photos / "chelsea.jpg"), env={"TANTRA_HOME": str(tmp_path)})
    assert result.returncode == 0 and b"cat" in result.stdout
    stderr = result.stderr.decode()
    assert "corrupt" in stderr and "tantra models pull efficientnet-lite0 --force" in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    alone = run_tantra("describe", "--engine", "onnxruntime", str(photos / "chelsea.jpg"),
                       env={"TANTRA_HOME": str(tmp_path)})  # fmt: skip
    assert alone.returncode == 1 and b"corrupt" in alone.stderr and b"Traceback" not in alone.stderr


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares a size it does not have: a decompression bomb's first bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\0" * 16)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))  # fmt: skip


def test_bad_images_get_one_line_each_and_the_rest_go_on(photos, tmp_path):
    png = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(png, "PNG")
    bad = {
        "empty.png": b"",
        "truncated.png": png.getvalue()[: len(png.getvalue()) // 2],
        "random.jpg": bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)),
        "bomb.png": _png_header_claiming(100_000, 100_000),
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.png").mkdir()
    names = [*bad, "folder.png", "missing.png"]
    result = run_tantra("describe", *(str(tmp_path / n) for n in names), str(photos / "coffee.png"))
    assert result.returncode == 1
    errors = result.stderr.decode().strip().splitlines()
    assert len(errors) == len(names) and "Traceback" not in result.stderr.decode()
    for name, words in zip(names, ["empty", "truncated", "not an image", "over the limit", "directory", "no such"],
                           strict=True):  # fmt: skip
        assert any(name in line and words in line for line in errors), (name, errors)
    assert b"espresso" in result.stdout  # the good image after the bad ones was still described


def test_unusual_but_valid_images_are_read(tmp_path):
    rng = np.random.default_rng(1)
    frames = [Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.new("CMYK", (50, 30), (0, 128, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.fromarray((rng.random((30, 40)) * 65535).astype(np.uint16)).save(tmp_path / "sixteen.png")
    Image.new("RGB", (1, 1), (255, 0, 0)).save(tmp_path / "pixel.bmp")
    Image.new("RGBA", (20, 10), (0, 0, 255, 128)).save(tmp_path / "alpha.webp")
    rotated = Image.new("RGB", (80, 20), (0, 200, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to show upright
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    files = ["animated.gif", "cmyk.jpg", "sixteen.png", "pixel.bmp", "alpha.webp", "rotated.jpg"]
    result = run_tantra("describe", "--json", *(str(tmp_path / f) for f in files))
    assert result.returncode == 0, result.stderr
    rows = {json.loads(line)["image"].rsplit("/", 1)[-1]: json.loads(line) for line in result.stdout.splitlines()}
    assert rows["animated.gif"]["frames"] == 3 and rows["cmyk.jpg"]["mode"] == "CMYK"
    assert rows["sixteen.png"]["mode"].startswith("I") and rows["pixel.bmp"]["width"] == 1
    from core.vision.image_io import load_image

    upright, _ = load_image(tmp_path / "rotated.jpg")
    assert upright.size == (20, 80)  # EXIF orientation honoured
    sixteen, _ = load_image(tmp_path / "sixteen.png")
    assert np.asarray(sixteen).max() > 200  # scaled down from 16 bits, not clipped to white or black


def test_stdin_that_is_not_an_image(photos):
    result = run_tantra("describe", "-", stdin=b"just some text, not a picture")
    assert result.returncode == 1 and b"stdin is not an image" in result.stderr
    result = run_tantra("describe", "-", stdin=(photos / "coffee.png").read_bytes())
    assert result.returncode == 0 and b"espresso" in result.stdout


def test_ocr_reads_a_rendered_line_and_no_ocr_skips_it(tmp_path):
    from PIL import ImageDraw, ImageFont

    image = Image.new("RGB", (640, 160), "white")
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 40)
    except OSError:
        font = ImageFont.load_default(size=40)
    ImageDraw.Draw(image).text((20, 50), "Tantra reads this line", fill="black", font=font)
    image.save(tmp_path / "sign.png")
    result = run_tantra("describe", "--json", str(tmp_path / "sign.png"))
    assert result.returncode == 0, result.stderr
    lines = json.loads(result.stdout)["text"]
    assert [line["text"] for line in lines] == ["Tantra reads this line"] and len(lines[0]["box"]) == 4
    assert b"Text in the image: Tantra reads this line" in run_tantra("describe", str(tmp_path / "sign.png")).stdout
    assert json.loads(run_tantra("describe", "--json", "--no-ocr", str(tmp_path / "sign.png")).stdout)["text"] == []


def test_a_video_is_described_by_evenly_spaced_frames(photos, tmp_path):
    import subprocess

    from core.runtime.files import ffmpeg_exe

    video = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-loop", "1", "-t", "2", "-i",
                    str(photos / "coffee.png"), "-vf", "scale=320:-2", "-r", "5", "-pix_fmt", "yuv420p", str(video)],
                   check=True)  # fmt: skip
    (tmp_path / "fake.mp4").write_bytes(b"not a video at all" * 10)
    result = run_tantra("describe", "--no-ocr", str(video), str(tmp_path / "fake.mp4"))
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 4 and all(" s: " in line and "espresso" in line for line in lines), lines
    assert result.returncode == 1 and b"fake.mp4: no video stream" in result.stderr
