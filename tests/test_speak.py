"""Speech output: text normalization, sentence streaming, the real Piper voice heard back by Whisper, the CLI."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import wave

import numpy as np
import pytest
import soundfile

from config.errors import BadInput
from tests.conftest import ROOT, normalise, run_tantra


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("It weighs 3.5 kg.", "It weighs three point five kilograms."),
        ("Dr. Smith is in.", "Doctor Smith is in."),
        ("That is $20, or $3.99 each.", "That is twenty dollars, or three dollars and ninety-nine cents each."),
        ("Meet at 10:30 or 9:05 pm.", "Meet at ten thirty or nine oh five P M."),
        ("In 1999, 45% of 2,000 people came 1st.",
         "In nineteen ninety-nine, forty-five percent of two thousand people came first."),
        ("It was -5 °C & 10 km/h.", "It was minus five degrees Celsius and ten kilometres per hour."),
    ],
)  # fmt: skip
def test_numbers_money_times_units_and_abbreviations_read_as_words(text, spoken):
    from core.voice.speech_text import normalize

    assert normalize(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Great idea! 😀👍🏽 Let's go ❤️ 🇵🇹", ["Great idea!", "Let's go"]),
        ("Sure :) and :-( and ;) and :D and <3 and ^_^ xD", ["Sure and and and and and"]),
        ("Happy ¯\\_(ツ)_/¯ anyway.", ["Happy anyway."]),
        ("See [the docs](https://example.com/a_(b)) now.", ["See the docs) now."]),  # an address stops at ")"
        ("See [the docs](https://example.com/docs \"Docs\") and ![a cat](cat.png).", ["See the docs and a cat."]),
        ("# Recipe\n## Steps\n- eggs\n* milk\n+ flour\n• sugar",
         ["Recipe", "Steps", "eggs", "milk", "flour", "sugar"]),
        ("**Bold**, *italic*, __under__, ~~gone~~ and `code`; snake_case.",
         ["Bold, italic, under, gone and code; snake case."]),
        ("Run it:\n```python\nprint(1)\n```\nDone.", ["Run it:", "print(one)", "Done."]),  # no fences, no "python"
        ("One.\n\n---\n\n* * *\nTwo.", ["One.", "Two."]),
        ("Your name is... Lilac! *takes a sip of coffee* (smiling) It suits you.",
         ["Your name is...", "Lilac!", "It suits you."]),
        ("It is *not* safe: 2 * 3 is 6 (in Lisbon).", ["It is not safe: two times three is six (in Lisbon)."]),
        ("#1 fan at 10:30 (UTC), 8) done", ["number one fan at ten thirty (UTC), eight) done"]),  # no emoticons here
    ],
)  # fmt: skip
def test_emoji_emoticons_markdown_and_stage_directions_are_not_read_aloud(text, spoken):
    from core.voice.speech_text import normalize, sentences

    assert list(sentences(normalize(text))) == spoken


def test_a_piece_that_is_only_a_stage_direction_or_emoji_has_no_words():
    from core.voice.speech_text import has_words, normalize

    assert not has_words(normalize("*smiles warmly*")) and not has_words(normalize("😀 :)"))


def test_sentences_split_at_ends_and_long_ones_at_commas():
    from core.voice.speech_text import sentences

    assert list(sentences("One. Two? Three!\n\nFour")) == ["One.", "Two?", "Three!", "Four"]
    long = ", ".join(["a clause of words"] * 60) + "."
    parts = list(sentences(long, longest=200))
    assert len(parts) > 1 and all(len(p) <= 200 for p in parts)
    assert " ".join(parts).replace(" ", "") == long.replace(" ", "")  # nothing lost


@pytest.fixture(scope="module")
def piper(settings):
    from config.model_config import MODEL_CONFIG
    from core.model_loader import ModelLoader

    return ModelLoader(MODEL_CONFIG, settings).load_speaker("piper")


@pytest.mark.slow
def test_first_chunk_comes_before_the_last_sentence_is_synthesized(piper):
    from core.voice.speaker import Speaker

    calls = []

    class Recording:
        name, voice, sample_rate = piper.name, piper.voice, piper.sample_rate

        def synthesize(self, sentence, rate):
            calls.append(sentence)
            yield from piper.synthesize(sentence, rate)

    chunks = Speaker(Recording()).synthesize("First sentence here. Then a second one. And a third, the last.")
    first = next(chunks)
    assert calls == ["First sentence here."] and first.samples.dtype == np.float32 and first.seconds > 0.5
    assert [c.text for c in chunks] == ["Then a second one.", "And a third, the last."]


@pytest.mark.slow
def test_round_trip_through_whisper_has_few_word_errors(loader, tmp_path):
    """The default voice says it, Whisper tiny.en writes it down: at most 10% of the words may differ."""
    from core.hearing.audio_io import probe
    from core.hearing.transcriber import TranscribeOptions, transcribe

    text = ("The quick brown fox jumps over the lazy dog. Please call me when you arrive at the station. "
            "She opened the window and looked at the garden.")  # fmt: skip
    # The voice draws fresh noise for every sentence (VITS sampling), so each run sounds a little different, and
    # about one draw in twelve is misheard ("She opened" as "Gee, open": 3 words in 27). So the error rate is
    # measured over three takes, each with onnxruntime's random generator seeded: the same three every time.
    expected, errors, heard = normalise(text).split(), 0, []
    for seed in range(3):
        out = tmp_path / f"said{seed}.wav"
        seeded = f"import onnxruntime; onnxruntime.set_seed({seed}); from tantra_cli.app import main; main()"
        result = subprocess.run([sys.executable, "-c", seeded, "speak", text, "-o", str(out)], capture_output=True,
                                stdin=subprocess.DEVNULL, cwd=ROOT, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
        heard.append(" ".join(s.text for s in transcribe(loader.load_whisper(), probe(out), TranscribeOptions())))
        errors += _word_errors(expected, normalise(heard[-1]).split())
    assert errors / (3 * len(expected)) <= 0.10, heard


def _word_errors(expected: list[str], got: list[str]) -> int:
    """Levenshtein distance over words: substitutions, insertions and deletions."""
    row = list(range(len(got) + 1))
    for i, word in enumerate(expected, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(got, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1]


@pytest.mark.slow
def test_wav_on_stdout_is_valid_in_a_pipe_and_in_a_file(tmp_path):
    result = run_tantra("speak", "-o", "-", stdin=b"Hello from a pipe.\n")
    assert result.returncode == 0, result.stderr
    samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    assert rate == 22050 and len(samples) > rate // 2 and np.abs(samples).max() > 0.1
    target = tmp_path / "x.wav"
    with target.open("wb") as handle:  # `> x.wav`: a seekable stdout gets the real sizes in its header
        subprocess.run([sys.executable, "-m", "tantra_cli", "speak", "Hello there.", "-o", "-"], stdout=handle,
                       stdin=subprocess.DEVNULL, cwd=ROOT, check=True)  # fmt: skip
    with wave.open(str(target)) as wav:
        assert wav.getnframes() * 2 + 44 == target.stat().st_size and wav.getframerate() == 22050


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".flac", ".ogg", ".mp3"])
def test_file_format_follows_the_extension(tmp_path, suffix):
    out = tmp_path / f"hi{suffix}"
    result = run_tantra("speak", "Hello there.", "-o", str(out))
    assert result.returncode == 0, result.stderr
    samples, rate = soundfile.read(str(out))
    assert len(samples) / rate > 0.4


@pytest.mark.slow
def test_a_long_text_streams_its_first_audio_at_once():
    """100 kB of text: the WAV header and the first sentence arrive quickly; a reader that stops ends it cleanly."""
    text = ((ROOT / "samples" / "prose.txt").read_text() + "\n") * 60
    assert len(text.encode()) > 100_000
    start = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "tantra_cli", "speak", "-o", "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)  # fmt: skip
    child.stdin.write(text.encode())
    child.stdin.close()
    head = child.stdout.read(44 + 22050 * 2)  # the header and a second of audio
    first_audio = time.monotonic() - start
    child.stdout.close()  # the listener goes away
    assert child.wait(timeout=60) == 0, child.stderr.read()
    assert head[:4] == b"RIFF" and len(head) == 44 + 22050 * 2
    assert first_audio < 30  # loading included; the whole text would take minutes


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["   "], None, b"nothing to say"),
        (["?!... --"], None, b"no words"),
        (["\U0001f642\U0001f680"], None, b"no words"),
        (["-o", "-"], b"\xff\xfe not UTF-8", b"UTF-8"),
        (["Hello.", "-o", "/nonexistent/dir/x.wav"], None, b"cannot write"),
        (["Hello.", "-o", "x.xyz"], None, b"unknown audio format"),
        (["Hello.", "--voice", "nobody", "-o", "x.wav"], None, b"unknown voice 'nobody'"),
        (["Hello.", "--backend", "festival", "-o", "x.wav"], None, b"unknown speech backend"),
        (["Hello.", "--rate", "9", "-o", "x.wav"], None, b"out of range"),
        (["Hello."], None, b"no audio output device"),  # these machines have no sound card
    ],
)  # fmt: skip
def test_bad_input_gets_one_line_and_exit_1(args, stdin, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "tantra_cli", "speak", *args], input=stdin,
                            stdin=None if stdin else subprocess.DEVNULL, capture_output=True, cwd=tmp_path,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, timeout=120)  # fmt: skip
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert b"Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2
    assert not list(tmp_path.glob("*.wav"))


def test_espeak_ng_is_the_low_resource_voice(tmp_path):
    out = tmp_path / "small.wav"
    result = run_tantra("--low-resource", "-v", "speak", "Hello there.", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert b"espeak-ng" in result.stderr and soundfile.info(str(out)).duration > 0.3


def test_list_voices_shows_every_backend():
    result = run_tantra("speak", "--list-voices")
    assert result.returncode == 0
    assert b"piper-en_US-joe-medium" in result.stdout and b"coqui" in result.stdout and b"en-us" in result.stdout


@pytest.mark.slow
def test_coqui_speaks_a_tiny_model_made_here(tmp_path):
    """Coqui imports here through the torchaudio/torchcodec stand-ins; a random VITS runs its whole pipeline."""
    model = tmp_path / "tiny-vits"
    made = subprocess.run([sys.executable, "-m", "tests.coqui_tiny_model", str(model)], cwd=ROOT, capture_output=True)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "coqui.wav"
    result = run_tantra("-v", "speak", "hello there. how are you?", "--voice", str(model), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert b"speech: coqui" in result.stderr
    info = soundfile.info(str(out))
    assert info.samplerate == 16000 and info.duration > 0.5  # the config's rate: Coqui, not another backend
    # Coqui prints nothing on stdout, which carries the audio: no redirection of stdout is needed around it.
    result = run_tantra("speak", "hello there.", "--voice", str(model), "-o", "-")
    assert result.returncode == 0 and soundfile.info(io.BytesIO(result.stdout)).samplerate == 16000
    # Loading Coqui leaves the process's import path alone: the stand-ins are imported by their own finder.
    check = ("import sys; path = list(sys.path); from core.voice.speaker import CoquiBackend; "
             "CoquiBackend(sys.argv[1]); import torchaudio; "
             "print(path == sys.path, 'coqui_shim' in torchaudio.__file__)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", check, str(model)], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == ["True", "True"], result.stderr


@pytest.mark.slow
def test_coqui_runs_the_piper_voice_through_its_own_vits_onnx_code(settings, loader, tmp_path):
    from core.hearing.audio_io import probe
    from core.hearing.transcriber import TranscribeOptions, transcribe

    voice = settings.models_dir / "piper-en_US-joe-medium" / "voice.onnx"
    out = tmp_path / "coqui-onnx.wav"
    text = "Please call me when you arrive at the station."
    result = run_tantra("speak", text, "--backend", "coqui", "--voice", str(voice), "-o", str(out))
    assert result.returncode == 0, result.stderr
    heard = " ".join(s.text for s in transcribe(loader.load_whisper(), probe(out), TranscribeOptions()))
    assert _word_errors(normalise(text).split(), normalise(heard).split()) <= 1, heard


@pytest.mark.slow
def test_coqui_status_and_the_chain(tmp_path):
    rows = {row["model"]: row for row in __import__("json").loads(run_tantra("models", "--json").stdout)}
    # Installed, but its default voice is not downloaded (and cannot be, here): the chain goes on to Piper without a
    # word.
    assert rows["coqui tts_models/en/ljspeech/tacotron2-DDC"]["status"] == "installed, weights not on disk"
    result = run_tantra("-v", "speak", "Hello.", "-o", str(tmp_path / "x.wav"))
    assert result.returncode == 0 and b"speech: piper" in result.stderr and b"Traceback" not in result.stderr
    result = run_tantra("speak", "Hello.", "--backend", "coqui", "-o", str(tmp_path / "y.wav"))
    assert result.returncode == 1 and b"could not download" in result.stderr


def test_player_streams_chunks_and_stops_at_once(monkeypatch):
    """No sound card here: a stand-in PortAudio shows what the player asks of a real one."""
    import threading
    import types

    from core.voice.audio_output import AudioPlayer
    from core.voice.speaker import AudioChunk

    events = []

    class Stream:
        def __init__(self, samplerate, channels, dtype, device):
            events.append(("open", samplerate, channels, dtype, device))

        def start(self):
            events.append("start")

        def write(self, samples):
            events.append(("write", samples.shape))

        def stop(self):
            events.append("drain")

        def abort(self):
            events.append("abort")

        def close(self):
            events.append("close")

    devices = [{"index": 2, "name": "microphone", "max_input_channels": 1, "max_output_channels": 0,
                "default_samplerate": 48000.0, "hostapi": 0},
               {"index": 3, "name": "speakers", "max_input_channels": 0, "max_output_channels": 2,
                "default_samplerate": 48000.0, "hostapi": 0}]  # fmt: skip
    fake = types.SimpleNamespace(
        OutputStream=Stream, PortAudioError=OSError, query_devices=lambda: devices,
        default=types.SimpleNamespace(device=(2, 3)), query_hostapis=lambda: [{"name": "ALSA"}],
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    chunk = AudioChunk(np.zeros(2205, dtype=np.float32), 22050, "a sentence.")
    player = AudioPlayer()
    assert player.play(iter([chunk, chunk])) == pytest.approx(0.2)
    assert events == [("open", 22050, 1, "float32", 3), "start", ("write", (2205, 1)), ("write", (2205, 1)),
                      "drain", "close"]  # fmt: skip

    events.clear()
    player = AudioPlayer()

    def endless():
        while True:
            yield chunk

    stopper = threading.Timer(0.05, player.stop)  # Ctrl-C or barge-in, from another thread
    stopper.start()
    player.play(endless())
    stopper.join()
    assert "abort" in events and "drain" not in events and events[-1] == "close"

    events.clear()
    assert AudioPlayer("speak").device.index == 3  # by part of its name, as the voice loop matches it
    with pytest.raises(BadInput, match="no output device 'hdmi'; choose one of: 3 \\(speakers\\)"):
        AudioPlayer("hdmi")

    def interrupted():
        yield chunk
        raise KeyboardInterrupt  # Ctrl-C while the next sentence is synthesized

    with pytest.raises(KeyboardInterrupt):
        AudioPlayer().play(interrupted())
    assert events[-2:] == ["abort", "close"]
