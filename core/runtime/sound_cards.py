"""The machine's sound cards, one way for every role: PortAudio's devices listed, and one named by index or by part of
its name (``--input-device``, ``--output-device``), or a one-line error that lists them. ``tantra speak`` plays
through it and the voice loop opens its microphone and speaker through it, so both match a name the same way."""

from __future__ import annotations

from dataclasses import dataclass, field

from config.errors import BadInput, TantraError


class NoSoundDevice(TantraError):
    """There is no microphone or speaker (or PortAudio is missing)."""


@dataclass
class DeviceInfo:
    """A sound device as PortAudio lists it: its channels each way, its own rate, and whether it is a default."""

    index: int
    name: str
    inputs: int
    outputs: int
    sample_rate: float
    default_input: bool = False
    default_output: bool = False
    host: str = field(default="")


def portaudio():
    """The ``sounddevice`` module, or ``NoSoundDevice`` where the PortAudio library is missing."""
    try:
        import sounddevice
    except OSError:  # the Python package is there, the PortAudio library is not
        raise NoSoundDevice("PortAudio is not installed (Debian: apt-get install libportaudio2)") from None
    return sounddevice


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio knows, inputs and outputs; empty when there is none (or no PortAudio)."""
    try:
        sounddevice = portaudio()
        devices = sounddevice.query_devices()
        default_in, default_out = sounddevice.default.device
        hosts = sounddevice.query_hostapis()
    except Exception:  # noqa: BLE001 - PortAudio fails in many ways when there is no sound at all
        return []
    return [
        DeviceInfo(d["index"], d["name"], d["max_input_channels"], d["max_output_channels"], d["default_samplerate"],
                   d["index"] == default_in, d["index"] == default_out, hosts[d["hostapi"]]["name"])
        for d in devices
    ]  # fmt: skip


def find_device(spec: str | None, kind: str) -> DeviceInfo:
    """The ``kind`` ("input" or "output") device that ``spec`` names (an index, or part of a name); the default one
    when ``spec`` is None. A one-line error when there is none."""
    portaudio()  # its absence is said as such, not as "no device"
    devices = [d for d in list_devices() if (d.inputs if kind == "input" else d.outputs) > 0]
    if not devices:
        raise NoSoundDevice(f"this machine has no audio {kind} device")
    if spec is None:
        default = [d for d in devices if (d.default_input if kind == "input" else d.default_output)]
        return (default or devices)[0]
    matches = [d for d in devices if str(d.index) == spec.strip()] or [
        d for d in devices if spec.strip().lower() in d.name.lower()
    ]
    if not matches:
        names = ", ".join(f"{d.index} ({d.name})" for d in devices)
        raise BadInput(f"no {kind} device {spec!r}; choose one of: {names} (`tantra devices` lists them)")
    return matches[0]
