"""The voice thread of a spoken conversation: it synthesizes piece n+1 of a reply while piece n plays.

``core.talk.voice_loop`` hands it the pieces of each reply (``say``) and stops it (``cancel``) on an interruption.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from config.errors import BadInput, TantraError


class VoiceThread:
    """Says pieces of text one after another on its own thread; the sound link plays them while it goes on."""

    def __init__(self, speaker, link) -> None:
        self.speaker, self.link = speaker, link
        self._queue: queue.Queue = queue.Queue()
        self._generation = 0  # bumped by cancel(): pieces queued before it are dropped
        self.said: dict[int, str] = {}
        self.failure: str | None = None
        self._sounded: set[int] = set()  # pieces whose first audio is queued to play (or that will have none)
        self._sounding = threading.Condition()
        threading.Thread(target=self._run, name="tantra-voice", daemon=True).start()

    def say(self, tag: int, text: str) -> None:
        self.said[tag] = text
        self._queue.put((self._generation, tag, text))

    def cancel(self) -> None:
        self._generation += 1
        self.link.playback.clear()

    def wait_for_sound(self, tag: int, timeout: float) -> None:
        """Until the first audio of piece ``tag`` is queued to play, or it turned out to have none, or ``timeout``."""
        with self._sounding:
            self._sounding.wait_for(lambda: tag in self._sounded, timeout)

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def close(self) -> None:
        self.cancel()
        self._queue.put(None)

    def _run(self) -> None:
        import soxr

        while (item := self._queue.get()) is not None:
            generation, tag, text = item
            try:
                if generation != self._generation:
                    continue
                for chunk in self.speaker.synthesize(text):
                    if generation != self._generation:
                        break
                    samples = chunk.samples
                    if chunk.sample_rate != self.link.output_rate:
                        samples = soxr.resample(samples, chunk.sample_rate, self.link.output_rate).astype(np.float32)
                    self.link.playback.add(samples, tag)
                    self._sound(tag)
            except BadInput:
                pass  # a piece without words ("--", an emoji): nothing to say
            except TantraError as error:
                self.failure = str(error)
            finally:
                self._sound(tag)
                self._queue.task_done()

    def _sound(self, tag: int) -> None:
        with self._sounding:
            if tag not in self._sounded:
                self._sounded.add(tag)
                self._sounding.notify_all()
