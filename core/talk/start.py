"""What a voice loop starts from: what the command line asked (``VoiceRequest``), the sound link that request
opens (real devices, or the stand-in files), and the roles loaded and warmed up. ``tantra chat --voice``, the REPL's
``/voice`` and ``tantra bench voice`` all start this way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.errors import BadInput
from core.runtime.status import say


@dataclass(frozen=True)
class VoiceRequest:
    """What the command line asked of the voice loop."""

    barge_in: str = "auto"
    push_to_talk: bool = False
    input_device: str | None = None
    output_device: str | None = None
    mic_file: Path | None = None
    speaker_file: Path | None = None
    rate: float = 1.0
    wake: str | None = None
    """A wake word (``core.talk.wake_word.WAKE_WORDS``): only turns with it are answered, and follow-ups."""


def voice_options(request: VoiceRequest):
    """The voice loop's options for ``request``: its barge-in, the echo canceller, and the wake word's listener,
    loaded now."""
    from core.talk.events import VoiceOptions

    wake = None
    if request.wake:
        from core.talk.wake_word import WakeListener, WakeWord

        wake = WakeListener(WakeWord(request.wake))
    # Headphones (on) and Ctrl-C only (off) have no echo to cancel: the canceller is for loudspeakers (auto).
    canceller = _echo_canceller() if request.barge_in == "auto" else None
    return VoiceOptions(barge_in=request.barge_in, wake=wake, echo_canceller=canceller)


def _echo_canceller():
    """WebRTC's echo canceller, or None (with one note: the microphone then rests while Tantra speaks)."""
    from config.errors import TantraError
    from core.talk.echo_canceller import EchoCanceller

    try:
        return EchoCanceller()
    except TantraError as error:
        say(f"no echo cancellation ({error}): on loudspeakers the microphone rests while Tantra speaks")
        return None


def open_link(request: VoiceRequest, output_rate: int = 22050):
    """The stand-in microphone and speaker when a file is given, else the real devices."""
    if request.mic_file is not None:
        from core.talk.stand_in_audio import StandInAudio, open_mic_file

        if request.speaker_file is None:
            say("no --speaker-file: the replies are shown but not played")
        return StandInAudio(open_mic_file(request.mic_file), output_rate, request.speaker_file)
    if request.speaker_file is not None:
        raise BadInput("--speaker-file goes with --mic-file (the stand-in pair); without both, real devices are used")
    from core.talk.sound_devices import DeviceAudio

    return DeviceAudio(request.input_device, request.output_device)


def load_roles(loader, session_factory, request: VoiceRequest):
    """Whisper, the chat session, the voice and Smart Turn, loaded and warmed up (the first call of each is the
    slowest)."""
    import numpy as np

    from core.hearing.transcriber import TranscribeOptions, check_options, spoken_text
    from core.talk.end_of_turn import load_end_of_turn
    from core.talk.events import Roles
    from core.voice.speaker import Speaker

    session = session_factory()
    whisper = loader.load_whisper()
    options = TranscribeOptions(beam_size=loader.beam_size)
    check_options(whisper, options)

    def hear(audio) -> str:
        # faster-whisper reads a turn in a window cut to it (about 2x faster); other engines, and the turns it
        # declines, are read as any audio
        quick = getattr(whisper, "transcribe_turn", None)
        text = quick(audio, options) if quick is not None else None
        return text if text is not None else spoken_text(whisper.transcribe_block(audio, options)[1])

    speaker = Speaker(loader.load_speaker(), request.rate)
    hear(np.zeros(16000, dtype=np.float32))
    for _ in speaker.synthesize("Ready."):
        pass
    session.warm_up()
    return Roles(session, hear, speaker, load_end_of_turn(loader.settings, loader.warn))
