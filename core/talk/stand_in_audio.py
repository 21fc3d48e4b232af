"""A stand-in sound card for machines without one: an audio file as the microphone, a WAV file as the speaker.

It keeps time as a sound card does. One thread ticks every 32 ms of wall-clock time: it takes the next 32 ms of the
microphone file (silence once the file is over; a FIFO that has nothing yet gives silence too, so input never runs
ahead and never stalls), and the next 32 ms of whatever is queued for playback (silence when nothing is), which it
appends to the speaker file. The speaker file is therefore the true timeline of the session: what the user would
have heard, and when. A ``Room`` mixes the speaker back into the microphone, as loudspeakers do (pipecat's
EvalMicrophone and a recording speaker are the model).
"""

from __future__ import annotations

import os
import queue
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config.errors import BadInput
from core.talk.sound_io import FRAME, SAMPLE_RATE, Frame, PlaybackQueue

FRAME_SECONDS = FRAME / SAMPLE_RATE


class MicSource:
    """Samples for the stand-in microphone. ``read`` never blocks: it returns what there is, padded with silence,
    or None once the source is over."""

    def read(self, count: int) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RecordingSource(MicSource):
    """A whole recording, already decoded to 16 kHz."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio, self.position = np.asarray(audio, dtype=np.float32), 0

    def read(self, count: int) -> np.ndarray | None:
        if self.position >= len(self.audio):
            return None
        out = np.zeros(count, dtype=np.float32)
        piece = self.audio[self.position : self.position + count]
        out[: len(piece)] = piece
        self.position += count
        return out


class StreamSource(MicSource):
    """A FIFO (or anything ffmpeg reads as it is written), decoded by ffmpeg as the data comes."""

    def __init__(self, path: Path) -> None:
        from core.runtime.files import ffmpeg_exe

        command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path)]
        command += ["-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "pipe:1"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._ended = threading.Event()
        threading.Thread(target=self._pump, name="tantra-mic-fifo", daemon=True).start()

    def _pump(self) -> None:
        while data := self.process.stdout.read1(1 << 14):
            with self._lock:
                self._buffer += data
        self._ended.set()

    def read(self, count: int) -> np.ndarray | None:
        with self._lock:
            usable = len(self._buffer) // 4 * 4
            if usable == 0 and self._ended.is_set():
                return None
            take = min(usable, count * 4)
            data = bytes(self._buffer[:take])
            del self._buffer[:take]
        out = np.zeros(count, dtype=np.float32)
        samples = np.frombuffer(data, dtype=np.float32)
        out[: len(samples)] = samples
        return out

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class ScriptedSource(MicSource):
    """Clips said one at a time: each waits until ``ready()`` has been true for ``pause`` seconds (the assistant
    has answered and is quiet), as a person waits for an answer. For benchmarks and tests."""

    def __init__(self, clips: list[np.ndarray], ready: Callable[[], bool], pause: float = 1.0) -> None:
        self.clips, self.ready, self.pause = list(clips), ready, pause
        self._current: RecordingSource | None = None
        self._quiet_frames = 0

    def read(self, count: int) -> np.ndarray | None:
        if self._current is not None:
            piece = self._current.read(count)
            if piece is not None:
                return piece
            self._current, self._quiet_frames = None, 0
        if not self.clips:
            return None
        self._quiet_frames = self._quiet_frames + 1 if self.ready() else 0
        if self._quiet_frames * count / SAMPLE_RATE >= self.pause:
            self._current = RecordingSource(self.clips.pop(0))
        return np.zeros(count, dtype=np.float32)


def open_mic_file(path: Path) -> MicSource:
    """A ``--mic-file``: any audio ``tantra transcribe`` reads, or a FIFO. Not audio, empty, or without any speech:
    a one-line error before the session starts."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BadInput(f"--mic-file {path}: no such file") from None
    if stat.S_ISFIFO(mode):
        return StreamSource(path)
    from core.hearing.audio_io import load_audio, probe
    from core.hearing.transcriber import has_speech

    audio = load_audio(probe(path, f"--mic-file {path}"))
    if not has_speech(audio):
        raise BadInput(
            f"--mic-file {path}: no speech in its {len(audio) / SAMPLE_RATE:.0f} s (silence or noise); "
            "record a question, or speak into a microphone without --mic-file"
        )
    return RecordingSource(audio)


@dataclass(frozen=True)
class Room:
    """Loudspeakers heard by the microphone: the output, ``gain_db`` quieter and ``delay`` seconds late."""

    gain_db: float = -10.0
    delay: float = 0.08


class StandInAudio:
    """The stand-in microphone and speaker (see the module's docstring). ``output_rate`` is the voice's rate."""

    def __init__(self, source: MicSource, output_rate: int, speaker_file: Path | None = None,
                 room: Room | None = None, trailing_seconds: float = 1.0, speed: float = 1.0) -> None:  # fmt: skip
        """``trailing_seconds`` of silence follow the source before ``frames()`` ends, so a last turn can end.
        ``speed`` above 1 runs the timeline faster than real time (tests with fake models: every time stamp is on
        ``clock()``, so turn taking, latencies and the speaker file stay consistent)."""
        self.source, self.output_rate, self.room, self.speed = source, output_rate, room, speed
        self.playback = PlaybackQueue()
        self._frames: queue.Queue[Frame | None] = queue.Queue()
        self._trailing = round(trailing_seconds / FRAME_SECONDS)
        self._closed = threading.Event()
        self._writer = None
        if speaker_file is not None:
            import soundfile

            try:
                self._writer = soundfile.SoundFile(
                    speaker_file, "w", samplerate=output_rate, channels=1, format="WAV", subtype="PCM_16"
                )
            except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
                raise BadInput(f"--speaker-file {speaker_file}: cannot write it ({error})") from None
        self._echo, self._echo_resampler = None, None
        if room is not None:
            import soxr

            self._echo_resampler = soxr.ResampleStream(output_rate, SAMPLE_RATE, 1, dtype="float32")
            self._echo = np.zeros(round(room.delay * SAMPLE_RATE), dtype=np.float32)  # the delay line
        self.started_at = time.monotonic()
        """The speaker file's time 0, on ``clock()``."""
        self._thread = threading.Thread(target=self._tick, name="tantra-stand-in-audio", daemon=True)
        self._thread.start()

    def clock(self) -> float:
        return self.started_at + (time.monotonic() - self.started_at) * self.speed

    def _tick(self) -> None:
        tick, after_end = 0, None
        while not self._closed.is_set():
            due = self.started_at + (tick + 1) * FRAME_SECONDS / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # behind (a starved CPU)? catch up at once, as a sound card's buffer would
            now = self.clock()
            rate = FRAME_SECONDS * self.output_rate  # output samples per tick, not a whole number: rounded cumulatively
            count = round((tick + 1) * rate) - round(tick * rate)
            out = self.playback.take(count, at=self.clock, rate=self.output_rate)
            if self._writer is not None:
                self._writer.write(out)
            mic = self.source.read(FRAME) if after_end is None else None
            if mic is None:
                after_end = tick if after_end is None else after_end
                mic = np.zeros(FRAME, dtype=np.float32)
            if self._echo is not None:
                heard = self._echo_resampler.resample_chunk(out) * 10 ** (self.room.gain_db / 20)
                self._echo = np.concatenate([self._echo, heard])
                echo, self._echo = self._echo[:FRAME], self._echo[FRAME:]
                mic[: len(echo)] += echo
            if after_end is None or tick - after_end < self._trailing:
                self._frames.put(Frame(mic, now))
            elif tick - after_end == self._trailing:
                self._frames.put(None)
            tick += 1

    def frames(self) -> Iterator[Frame]:
        while (frame := self._frames.get()) is not None:
            yield frame

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=1)
        self._frames.put(None)
        self.source.close()
        self._echo_resampler = None  # soxr's native object goes now, not at interpreter exit (it warns there)
        if self._writer is not None:
            self._writer.close()
