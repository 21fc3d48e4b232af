"""``tantra chat --voice`` without a terminal (and the parts the REPL's ``/voice`` shares): open the sound link,
load the three models while already listening, and show each turn as text or one JSON object per line."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadInput, TantraError
from core.status import say


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


def open_link(request: VoiceRequest, output_rate: int = 22050):
    """The stand-in microphone and speaker when a file is given, else the real devices."""
    if request.mic_file is not None:
        from encoders.stand_in_audio import StandInAudio, open_mic_file

        if request.speaker_file is None:
            say("no --speaker-file: the replies are shown but not played")
        return StandInAudio(open_mic_file(request.mic_file), output_rate, request.speaker_file)
    if request.speaker_file is not None:
        raise BadInput("--speaker-file goes with --mic-file (the stand-in pair); without both, real devices are used")
    from encoders.sound_devices import DeviceAudio

    return DeviceAudio(request.input_device, request.output_device)


def load_roles(loader, session_factory, request: VoiceRequest):
    """Whisper, the chat session and the voice, loaded and warmed up (the first call of each is the slowest)."""
    import numpy as np

    from core.transcriber import TranscribeOptions, check_options
    from core.voice_loop import Roles
    from encoders.speaker import Speaker

    session = session_factory()
    whisper = loader.load_whisper()
    options = TranscribeOptions(beam_size=loader.beam_size)
    check_options(whisper, options)

    def hear(audio) -> str:
        _, segments = whisper.transcribe_block(audio, options)
        # Whisper's own rule for a segment it only imagined: likely no speech, and not sure of its words.
        return "".join(
            s.text for s in segments
            if not (s.no_speech_prob is not None and s.no_speech_prob > 0.6 and (s.avg_logprob or 0) < -1.0)
        ).strip()  # fmt: skip

    speaker = Speaker(loader.load_speaker(), request.rate)
    hear(np.zeros(16000, dtype=np.float32))
    for _ in speaker.synthesize("Ready."):
        pass
    session.warm_up()
    return Roles(session, hear, speaker)


def run_headless(loop, load, as_json: bool) -> int:
    """Answer spoken turns until the stand-in microphone's file is over; the exit code. Ctrl-C stops what is going
    on (a recording, a reply); pressed when nothing is, it ends the session."""
    from core.voice_loop import Heard, Note, ReplyText, TurnDone

    ended_by_user = False

    def on_ctrl_c(signum, frame) -> None:
        nonlocal ended_by_user
        stopped = loop.interrupt()
        if stopped:
            say(f"stopped the {stopped}")
        else:
            ended_by_user = True
            loop.quit()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    failed = False
    try:
        for event in loop.run(load):
            if isinstance(event, Note):
                say(event.text)
                failed = failed or event.text.startswith("the microphone stopped")
            elif as_json:
                if isinstance(event, Heard):
                    say(f"heard: {event.text}")
                elif isinstance(event, TurnDone):
                    print(json.dumps(event.record.as_json(), ensure_ascii=False), flush=True)
            elif isinstance(event, Heard):
                print(f"you: {event.text}\ntantra: ", end="", flush=True)
            elif isinstance(event, ReplyText):
                print(event.text, end="", flush=True)
            elif isinstance(event, TurnDone):
                print(" (interrupted)" if event.record.interrupted else "", flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
        loop.link.close()
    if failed:
        raise TantraError("the voice conversation ended because the microphone stopped")
    return 130 if ended_by_user else 0

