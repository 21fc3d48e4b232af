"""``tantra speak [TEXT | -]``: text to speech, played aloud, written to a file, or streamed as WAV on stdout."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from config.errors import BadInput, TantraError
from core.runtime.status import say
from tantra_cli.common import read_stdin_text, settings_of, user_errors


def _list_voices(settings) -> None:
    from config.model_config import STORE_MODELS
    from core.runtime import model_store
    from core.voice.speaker import coqui_status, espeak_voices

    for model in (m for m in STORE_MODELS if m.role == "voice"):
        state = model_store.status(model, settings).state
        print(f"piper      {model.name:<28} {model.description} [{state}]")
    print("piper      PATH.onnx                    any Piper voice file (with its .onnx.json beside it)")
    print(f"coqui      tts_models/... or DIR        Coqui TTS [{coqui_status(settings.models_dir)}]")
    voices = espeak_voices()
    shown = ", ".join(v for v in voices if v.startswith("en")) + f" (and {len(voices)} in all)"
    print(f"espeak-ng  {shown if voices else '[not installed: apt-get install espeak-ng]'}")


def _list_devices() -> None:
    from core.runtime.sound_cards import list_devices

    devices = [device for device in list_devices() if device.outputs]
    if not devices:
        say("no audio output devices here; write a file instead: tantra speak TEXT -o out.wav")
    for device in devices:
        print(f"{device.index:>3}  {device.name}  ({device.outputs} channels)")


def speak(
    ctx: typer.Context,
    text: str = typer.Argument(None, metavar="[TEXT | -]", help="What to say; - or nothing reads stdin."),
    output: str = typer.Option(
        None, "--output", "-o", help="Write audio here (wav, flac, ogg or mp3 by extension; - is WAV on stdout)."
    ),
    voice: str = typer.Option(None, "--voice", help="A voice of --list-voices (a Piper voice, .onnx file, ...)."),
    rate: float = typer.Option(1.0, "--rate", help="Speed: 1 is normal, 1.5 faster, 0.75 slower."),
    backend: str = typer.Option(None, "--backend", help="coqui, piper or espeak-ng (default: the first that runs)."),
    output_device: str = typer.Option(None, "--output-device", help="Sound device to play on (see --list-devices)."),
    list_voices: bool = typer.Option(False, "--list-voices", help="List the voices and exit."),
    list_devices: bool = typer.Option(False, "--list-devices", help="List the sound devices and exit."),
) -> None:
    """Say TEXT (or stdin) aloud, or write it as audio; long text streams sentence by sentence."""
    settings = settings_of(ctx)
    with user_errors(settings):
        if list_voices:
            _list_voices(settings)
            return
        if list_devices:
            _list_devices()
            return
        if text is None or text == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise TantraError('give the text: tantra speak "Hello." or echo Hello | tantra speak')
            text = read_stdin_text("tantra speak")
        from core.voice.speech_text import has_words, normalize

        if not text.strip():
            raise BadInput("nothing to say: the text is empty")
        if not has_words(normalize(text)):
            raise BadInput("nothing to say: the text has no words")
        player = None
        if output is None:  # find out before synthesizing anything whether there is a device to play on
            from core.runtime.sound_cards import NoSoundDevice
            from core.voice.audio_output import AudioPlayer

            try:
                player = AudioPlayer(output_device)
            except NoSoundDevice as missing:
                raise TantraError(f"{missing}; write a file instead: tantra speak ... -o out.wav") from None

        speaker, chunks = _speech(settings, text, rate, backend, voice)
        if output == "-":
            from core.voice.audio_output import stdout_binary, write_wav_stream

            write_wav_stream(chunks, stdout_binary())
        elif output is not None:
            from core.voice.audio_output import write_file

            path = Path(output).expanduser()
            seconds = write_file(chunks, path)
            say(f"wrote {seconds:.1f} s of speech to {path} ({speaker.name})")
        else:
            player.play(chunks)  # Ctrl-C silences it at once, then exits with 130


def _speech(settings, text: str, rate: float, backend: str | None, voice: str | None):
    """``(speaker, its chunks of text)``. With ``--server``, the running ``tantra serve`` is the voice role's server,
    as for every role (``config.settings.with_server_roles``): it says a word first, so a server that is down is said
    in one line, and the local chain speaks, before anything is played or written."""
    from dataclasses import replace

    from config.model_config import MODEL_CONFIG
    from core.model_loader import ModelLoader
    from core.voice.speaker import Speaker

    if settings.server and voice is not None and backend is None:  # a voice of the server's, by its name there
        settings, voice = replace(settings, voice_name=voice), None
    speaker = Speaker(ModelLoader(MODEL_CONFIG, settings).load_speaker(backend, voice), rate)
    return speaker, speaker.synthesize(text)
