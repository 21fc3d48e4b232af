"""What ``tantra setup`` finds on this machine: the default models, SpikingBrain's kernel and its compiler, the
voices, the sound devices, the wake words and the echo canceller. Each is a ``Finding``; what is missing says the
command that adds it on this operating system (apt-get on Linux, Homebrew on macOS, pip or an installer on
Windows). Nothing here installs anything but the models and the kernel, which go into Tantra's own store."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass

from config.errors import TantraError
from config.model_config import MODEL_CONFIG, StoreModel, find_store_model
from config.settings import Settings


@dataclass(frozen=True)
class Finding:
    """One line of the setup table."""

    part: str
    found: str
    """What is there ("ready", a compiler's name, a device), or what is missing."""
    ok: bool
    fix: str = ""
    """The command that adds what is missing, on this operating system."""
    needed: bool = False
    """Whether Tantra's defaults cannot run without it (the exit code says so); the rest has a fallback."""


def _on_this_os(linux: str, mac: str, windows: str) -> str:
    return windows if sys.platform == "win32" else mac if sys.platform == "darwin" else linux


def default_models(settings: Settings) -> list[StoreModel]:
    """The store models Tantra's defaults load, one per role, and the voice loop's Smart Turn
    (``--low-resource``'s lightest language model too)."""
    names = [MODEL_CONFIG.language.default, MODEL_CONFIG.hearing.low_resource if settings.low_resource
             else MODEL_CONFIG.hearing.default, MODEL_CONFIG.vision.default, MODEL_CONFIG.voice.voices["piper"],
             MODEL_CONFIG.memory.default]  # fmt: skip
    if settings.end_of_turn == "smart-turn":
        from core.talk.end_of_turn import MODEL

        names.append(MODEL)
    if settings.low_resource:
        names.append(MODEL_CONFIG.language.chain.order(low_resource=True)[0])
    models = {model.name: model for model in map(find_store_model, names) if model is not None}
    return list(models.values())


def pull_models(settings: Settings, say) -> list[Finding]:
    """Each default model pulled (or found ready) in the store."""
    from core.runtime import model_store

    findings = []
    for model in default_models(settings):
        try:
            if model_store.status(model, settings).state != "ready":
                model_store.pull(model, settings, say)
            findings.append(Finding(f"{model.role} model", f"{model.name}: ready", True, needed=True))
        except TantraError as error:
            findings.append(Finding(f"{model.role} model", f"{model.name}: {error}", False,
                                    f"tantra models pull {model.name}", needed=True))  # fmt: skip
    return findings


def kernel(settings: Settings) -> Finding:
    """SpikingBrain's kernel, built (once) and checked, and the compiler that built it."""
    from core.models import native
    from core.models.c_compiler import find_compiler, install_hint

    compiler = find_compiler()
    if compiler is None:
        return Finding("C compiler", "none: SpikingBrain decodes in PyTorch, about 2.5x slower", False, install_hint())
    try:
        built = native.load(settings.models_dir / "kernels")
    except OSError as error:
        return Finding("SpikingBrain kernel", f"{compiler.name} could not build it ({error})", False, install_hint())
    vector = "the compiler's baseline" if built.simd == "baseline" else built.simd
    return Finding("SpikingBrain kernel", f"built by {compiler.name} ({vector}), checked", True)


def voices() -> list[Finding]:
    """The voices beside Piper's (which is a store model): espeak-ng, the smallest, and Coqui, an extra."""
    from importlib.util import find_spec

    from core.voice.speaker import espeak_voices

    espeak = shutil.which("espeak-ng")
    found = [Finding("espeak-ng voice", f"{len(espeak_voices(espeak))} voices", True) if espeak else Finding(
        "espeak-ng voice", "not installed (--low-resource's voice; Piper speaks without it)", False,
        _on_this_os("apt-get install espeak-ng", "brew install espeak-ng",
                    "the espeak-ng .msi from github.com/espeak-ng/espeak-ng/releases"),
    )]  # fmt: skip
    coqui = find_spec("TTS") is not None
    found.append(Finding("Coqui voice", "installed" if coqui else "not installed (optional)", coqui,
                         "" if coqui else "pip install 'tantra[coqui]'"))  # fmt: skip
    return found


def sound() -> list[Finding]:
    """PortAudio and the default microphone and speaker."""
    from core.runtime.sound_cards import NoSoundDevice, list_devices, portaudio

    try:
        portaudio()
    except NoSoundDevice:
        return [Finding("sound (PortAudio)", "missing: no microphone or speaker", False,
                        _on_this_os("apt-get install libportaudio2", "pip install --force-reinstall sounddevice",
                                    "pip install --force-reinstall sounddevice"))]  # fmt: skip
    devices = list_devices()
    files = "none: talk through files (--mic-file, --speaker-file)"
    found = []
    for kind, count, default in (("microphone", "inputs", "default_input"), ("speaker", "outputs", "default_output")):
        present = [d for d in devices if getattr(d, count) > 0]
        chosen = next((d for d in present if getattr(d, default)), present[0] if present else None)
        found.append(Finding(kind, f"{chosen.name} ({chosen.host})" if chosen else files, chosen is not None))
    return found


def listening() -> list[Finding]:
    """The wake words and the echo canceller, whose models come in their wheels: loaded once to be sure."""
    from core.talk.echo_canceller import EchoCanceller
    from core.talk.wake_word import WAKE_WORDS, WakeWord

    found = []
    for part, load, said, wheel in (
        ("wake words", lambda: WakeWord(next(iter(WAKE_WORDS))), ", ".join(WAKE_WORDS), "pyopen-wakeword==1.1.0"),
        ("echo canceller", EchoCanceller, "WebRTC AEC3: talk over it on loudspeakers", "pywebrtc-audio==0.2.0"),
    ):
        try:
            load()
            found.append(Finding(part, said, True))
        except TantraError as error:
            found.append(Finding(part, str(error), False, f"pip install {wheel}"))
    return found


def whisper_engines() -> Finding:
    """openai-whisper, the second Whisper engine, which pip cannot install without a GPU compiler (triton)."""
    from importlib.util import find_spec

    if find_spec("whisper") is not None:
        return Finding("openai-whisper engine", "installed", True)
    return Finding("openai-whisper engine", "not installed (optional: faster-whisper is the default)", False,
                   "pip install --no-deps openai-whisper==20250625")  # fmt: skip
