"""The speaker role: text in, audio chunks out, sentence by sentence, from one of three backends.

``Speaker.synthesize(text)`` yields ``AudioChunk``s as each sentence is ready, so playback (or a file, or a pipe)
starts after the first sentence while the rest is still being synthesized, and memory stays bounded however long
the text. Backends, in the order of the fallback chain:

- ``coqui``: Coqui TTS (the spec's voice, ``tts_models/en/ljspeech/tacotron2-DDC``), a local Coqui model
  directory, or a Piper/VITS ONNX voice through Coqui's own VITS code, wherever ``import TTS`` works;
- ``piper``: a Piper VITS voice in ONNX (the default: en_US-joe-medium from the model store);
- ``espeak-ng``: Debian's formant synthesizer, the smallest (``--low-resource``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from config.errors import BadInput, ModelUnavailable, TantraError
from core.runtime.onnx_session import open_session
from core.voice.speech_text import has_words, normalize, sentences


@dataclass(frozen=True)
class AudioChunk:
    samples: np.ndarray
    """Mono float32 samples in [-1, 1]."""
    sample_rate: int
    text: str
    """The sentence these samples say."""

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


class SpeechBackend(Protocol):
    name: str
    voice: str
    sample_rate: int

    def synthesize(self, sentence: str, rate: float) -> Iterator[np.ndarray]:
        """Float32 samples for one sentence of words; ``rate`` 1.0 is the voice's own speed, 2.0 twice as fast."""
        ...


class PiperBackend:
    """A Piper VITS voice (ONNX model + JSON config) run by ``piper-tts`` on onnxruntime."""

    name = "piper"

    def __init__(self, model_path: Path, voice: str, providers: list[str] | None = None, threads: int = 0) -> None:
        """``providers`` and ``threads`` as ``core.runtime.placement`` gives them (0 threads: onnxruntime's own
        choice)."""
        import json

        from piper import PiperVoice  # piper-tts; imported only when this backend is used
        from piper.config import PiperConfig

        try:
            config = PiperConfig.from_dict(json.loads(Path(f"{model_path}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as error:
            raise ModelUnavailable(f"{model_path} is not a usable Piper voice ({error})") from None
        # onnxruntime's memory pattern plans buffers for every input length it meets; sentences all differ in
        # length, so it only grows. Without it a 2,000-word text peaks 70 MB lower, and synthesis is no slower.
        session = open_session(
            model_path, threads, providers or ["CPUExecutionProvider"], "Piper voice", enable_mem_pattern=False
        )
        self.piper = PiperVoice(config=config, session=session)
        self.voice = voice
        self.sample_rate = self.piper.config.sample_rate

    def synthesize(self, sentence: str, rate: float) -> Iterator[np.ndarray]:
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / rate)
        for chunk in self.piper.synthesize(sentence, config):
            yield chunk.audio_float_array


class EspeakBackend:
    """Debian's ``espeak-ng`` program: tiny and robotic, but always fast and always there."""

    name = "espeak-ng"
    WORDS_PER_MINUTE = 175  # espeak-ng's own default speed

    def __init__(self, voice: str = "en-us") -> None:
        self.program = shutil.which("espeak-ng")
        if self.program is None:
            raise ModelUnavailable("espeak-ng is not installed (on Debian or Ubuntu: apt-get install espeak-ng)")
        self.voice = voice
        if voice not in espeak_voices(self.program):
            raise BadInput(f"espeak-ng has no voice {voice!r}; `tantra speak --list-voices` lists them")
        self.sample_rate = 22050  # espeak-ng writes 22.05 kHz

    def synthesize(self, sentence: str, rate: float) -> Iterator[np.ndarray]:
        speed = str(round(self.WORDS_PER_MINUTE * rate))
        result = subprocess.run(
            [self.program, "--stdout", "-v", self.voice, "-s", speed, "--", sentence],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0 or not result.stdout:
            raise TantraError(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip() or 'no audio'}")
        # espeak-ng streams a WAV whose header cannot know the length: read the PCM after the 44-byte header.
        samples = np.frombuffer(result.stdout[44:], dtype="<i2").astype(np.float32) / 32768.0
        if samples.size:
            yield samples


def espeak_voices(program: str | None = None) -> list[str]:
    """espeak-ng's voice names (en-us, en-gb, de, ...); empty when espeak-ng is not installed."""
    program = program or shutil.which("espeak-ng")
    if program is None:
        return []
    listing = subprocess.run([program, "--voices"], capture_output=True, text=True, check=False).stdout
    return [line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1]


COQUI_SHIM = Path(__file__).resolve().parent / "coqui_shim"
_coqui_import = threading.Lock()


def _import_stand_in(name: str) -> None:
    """Import ``coqui_shim/NAME`` as the package ``NAME``, exactly as if it were installed: its own finder,
    no edit of ``sys.path``, so no other import can ever find a stand-in by accident."""
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec(name, [str(COQUI_SHIM)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _import_coqui():
    """``TTS.api``, with import-only stand-ins for torchaudio and torchcodec where those are missing (PyPI has
    none for this torch on a CPU, and speaking uses neither: see coqui_shim/README.md)."""
    with _coqui_import:  # once, even when threads load voices side by side
        for name in ("torchaudio", "torchcodec"):
            if name not in sys.modules and importlib.util.find_spec(name) is None:
                _import_stand_in(name)
        import TTS.api

        # Coqui logs a whole traceback when a download fails, and Tantra says it in one line. A handler of its
        # own keeps its records off Python's last-resort stderr handler, without touching anyone else's logging.
        coqui_logger = logging.getLogger("TTS")
        if not coqui_logger.handlers:
            coqui_logger.addHandler(logging.NullHandler())
    return TTS.api


def coqui_status(remember_in: Path | None = None) -> str:
    """Whether the Coqui backend can run here, in a few words (``tantra models`` shows it).

    Finding out means importing Coqui (and torch): about 2 s. With ``remember_in`` (a directory), the answer is
    kept there for this interpreter and these versions of Coqui and torch, so listing models stays quick."""
    if importlib.util.find_spec("TTS") is None:
        return "not installed (pip install 'tantra[coqui]')"
    kept = remember_in / "coqui-status.json" if remember_in is not None else None
    key = _coqui_key()
    if kept is not None:
        try:
            remembered = json.loads(kept.read_text(encoding="utf-8"))
            if remembered.get("key") == key:
                return str(remembered["status"])
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # not yet known, or unreadable: find out again
    try:
        _import_coqui()
        status = "ready"
    except Exception as error:  # noqa: BLE001 - any failure to import means the same thing here
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        status = f"installed but cannot be imported ({type(error).__name__}: {first})"
    if kept is not None:
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(json.dumps({"key": key, "status": status}), encoding="utf-8")
        except OSError:
            pass  # a read-only store: the next listing finds out again
    return status


def _coqui_key() -> list[str]:
    """What Coqui's importability depends on: this interpreter and the installed Coqui and torch."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("coqui-tts", "torch"):
        try:
            found.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} missing")
    return [sys.executable, *found]


def coqui_model_is_local(name: str) -> bool:
    """Whether Coqui's model manager already downloaded ``name`` (tts_models/en/ljspeech/tacotron2-DDC, ...):
    the fallback chain uses Coqui only then, so that no command downloads a voice unasked."""
    path = Path(name).expanduser()
    if path.suffix == ".onnx" or path.is_dir():
        return path.exists()
    home = os.environ.get("TTS_HOME") or os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(home) / "tts" / name.replace("/", "--")).is_dir()


class CoquiBackend:
    """Coqui TTS: a model by name (downloaded by Coqui's model manager where it is reachable), a local model
    directory (``config.json`` + a ``.pth`` checkpoint), or a Piper/VITS ONNX voice through Coqui's VITS code."""

    name = "coqui"

    def __init__(self, model: str, device: str = "cpu") -> None:
        status = coqui_status()
        if status != "ready":
            raise ModelUnavailable(f"Coqui TTS is {status}")
        self.voice = model
        path = Path(model).expanduser()
        if path.suffix == ".onnx":
            self._load_onnx(path, device)
            return
        api = _import_coqui()
        if path.is_dir():
            checkpoints = sorted(path.glob("*.pth"))
            if not (path / "config.json").is_file() or not checkpoints:
                raise BadInput(f"{path}: a Coqui model directory holds config.json and a .pth checkpoint")
        try:
            if path.is_dir():
                self.tts = api.TTS(model_path=str(checkpoints[0]), config_path=str(path / "config.json"))
            else:
                self.tts = api.TTS(model_name=model)
        except Exception as error:  # noqa: BLE001 - Coqui raises many kinds (download, config, checkpoint)
            if "Connection" in type(error).__name__:
                raise ModelUnavailable(
                    f"Coqui could not download {model!r} (its server is not reachable); "
                    "give a local Coqui model directory or a Piper voice instead"
                ) from None
            first = (str(error).strip().splitlines() or [""])[0][:200]
            raise ModelUnavailable(f"Coqui cannot load {model!r} ({type(error).__name__}: {first})") from None
        self.tts.to(device)
        self.sample_rate = self.tts.synthesizer.output_sample_rate
        self._speak = lambda sentence, rate: self.tts.tts(sentence, speed=rate)

    def _load_onnx(self, path: Path, device: str) -> None:
        """A Piper voice run by Coqui's VITS ONNX code (``Vits.load_onnx`` / ``inference_onnx``: the graph Piper
        exports has the same inputs and outputs), its phoneme ids made by the voice's own Piper phonemizer."""
        import json

        _import_coqui()
        from piper.config import PiperConfig
        from piper.voice import PiperVoice
        from TTS.tts.configs.vits_config import VitsConfig
        from TTS.tts.models.vits import Vits

        piper_config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
        config = VitsConfig()
        config.audio.sample_rate = piper_config.sample_rate
        model = Vits(config)
        model.load_onnx(str(path), cuda=device == "cuda")
        phonemizer = PiperVoice(config=piper_config, session=None)  # phonemes and ids only: no session needed
        self.sample_rate = piper_config.sample_rate

        model.inference_noise_scale = piper_config.noise_scale
        model.inference_noise_scale_dp = piper_config.noise_w_scale

        def speak(sentence: str, rate: float) -> np.ndarray:
            ids = [i for phonemes in phonemizer.phonemize(sentence) for i in phonemizer.phonemes_to_ids(phonemes)]
            model.length_scale = piper_config.length_scale / rate
            audio = model.inference_onnx(np.asarray([ids], dtype=np.int64))
            return audio / max(float(np.abs(audio).max()), 1e-8)  # full scale, as Piper itself normalizes

        self._speak = speak

    def synthesize(self, sentence: str, rate: float) -> Iterator[np.ndarray]:
        audio = self._speak(sentence, rate)  # Coqui 0.27+ logs, never prints: stdout stays ours (tested)
        yield np.asarray(audio, dtype=np.float32).reshape(-1)


class Speaker:
    """``Speaker(backend).synthesize(text)``: audio chunks, one or more per sentence, as they are ready."""

    def __init__(self, backend: SpeechBackend, rate: float = 1.0) -> None:
        if not 0.25 <= rate <= 4.0:
            raise BadInput(f"--rate {rate} is out of range: use 0.25 (slower) to 4 (faster); 1 is normal")
        self.backend, self.rate = backend, rate

    @property
    def name(self) -> str:
        return f"{self.backend.name}:{self.backend.voice}"

    @property
    def sample_rate(self) -> int:
        return self.backend.sample_rate

    def synthesize(self, text: str) -> Iterator[AudioChunk]:
        spoken = normalize(text)
        if not has_words(spoken):
            raise BadInput("nothing to say: the text " + ("has no words" if text.strip() else "is empty"))
        for sentence in sentences(spoken):
            for samples in self.backend.synthesize(sentence, self.rate):
                samples = np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)
                yield AudioChunk(samples, self.sample_rate, sentence)
