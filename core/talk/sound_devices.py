"""Real sound devices through PortAudio (``sounddevice``): the list, and a microphone and speaker for the voice loop.

Devices are opened at their own sample rate and resampled here: "invalid sample rate" is the second most common
complaint of voice-assistant users, after echo. Both streams use callbacks, so stopping playback (barge-in, Ctrl-C)
takes effect at the next block the device asks for, within the output latency (35 ms through PulseAudio).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import numpy as np

from core.runtime.sound_cards import NoSoundDevice, find_device, portaudio
from core.talk.sound_io import FRAME, SAMPLE_RATE, Frame, PlaybackQueue

SILENT_INPUT_SECONDS = 2.0  # a microphone that delivers nothing this long is gone (unplugged, suspended)
# ... once it has started: the first block can take longer. PulseAudio's ALSA plugin delivers nothing until the
# source's current period ends, up to 2 s on an idle null sink (measured 0.2-1.9 s); a Bluetooth headset wakes slower.
FIRST_INPUT_SECONDS = 10.0


class DeviceAudio:
    """A microphone and a speaker on PortAudio, as the voice loop's sound link (``core.talk.sound_io.AudioLink``)."""

    def __init__(self, input_device: str | None = None, output_device: str | None = None, speaker: bool = True) -> None:
        """``speaker`` False opens the microphone alone (live captions play nothing)."""
        import soxr

        sounddevice = portaudio()
        self.input = find_device(input_device, "input")
        self.output = find_device(output_device, "output") if speaker else None
        input_rate = int(self.input.sample_rate)
        self.output_rate = int(self.output.sample_rate) if speaker else SAMPLE_RATE
        self.playback = PlaybackQueue()
        self._resampler = None
        if input_rate != SAMPLE_RATE:
            self._resampler = soxr.ResampleStream(input_rate, SAMPLE_RATE, 1, dtype="float32")
        self._captured: queue.Queue[tuple[np.ndarray, float]] = queue.Queue()
        self._closed = threading.Event()
        try:
            self._in = sounddevice.InputStream(
                device=self.input.index, channels=1, samplerate=input_rate, dtype="float32",
                blocksize=round(input_rate * FRAME / SAMPLE_RATE), callback=self._on_input,
            )  # fmt: skip
            self._out = None if not speaker else sounddevice.OutputStream(
                device=self.output.index, channels=1, samplerate=self.output_rate, dtype="float32",
                # not "low" (8.6 ms through PulseAudio): with the models busy on every core the callback came late
                # and the reply broke up (a 6 s reply played as 9.5 s of pieces); "high" (35 ms there) held.
                latency="high", callback=self._on_output,
            )  # fmt: skip
            self._in.start()
            if self._out is not None:
                self._out.start()
        except (sounddevice.PortAudioError, ValueError) as error:
            raise NoSoundDevice(f"cannot open the sound devices ({error})") from None
        self.playback.latency = float(self._out.latency) if self._out is not None else 0.0

    clock = staticmethod(time.monotonic)

    def _on_input(self, indata, frames, time_info, status) -> None:
        self._captured.put((indata[:, 0].copy(), time.monotonic()))

    def _on_output(self, outdata, frames, time_info, status) -> None:
        outdata[:, 0] = self.playback.take(frames, rate=self.output_rate)

    def frames(self) -> Iterator[Frame]:
        pending = np.zeros(0, dtype=np.float32)
        timeout = FIRST_INPUT_SECONDS
        while not self._closed.is_set():
            try:
                block, at = self._captured.get(timeout=timeout)
            except queue.Empty:
                if self._closed.is_set():
                    return
                raise NoSoundDevice(
                    f"the microphone ({self.input.name}) sent nothing for {timeout:.0f} s: was it unplugged?"
                ) from None
            if self._closed.is_set():
                return  # closed while waiting: the resampler is gone
            timeout = SILENT_INPUT_SECONDS
            pending = np.concatenate([pending, self._resample(block)])
            while len(pending) >= FRAME:
                left = len(pending) - FRAME  # samples after this frame, captured later than its end
                yield Frame(pending[:FRAME], at - left / SAMPLE_RATE)
                pending = pending[FRAME:]

    def _resample(self, block: np.ndarray) -> np.ndarray:
        resampler = self._resampler  # close() drops it, from another thread
        return block if resampler is None else resampler.resample_chunk(block)

    def close(self) -> None:
        self._closed.set()
        for stream in (self._in, self._out):
            if stream is None:
                continue
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001, S110 - a device that is already gone cannot be closed twice
                pass
        # The listener may still wait in frames() when the program exits: a resampler it holds then is reported
        # as a leak by soxr's bindings ("nanobind: leaked 1 instances!") on every Ctrl-C.
        self._resampler = None
