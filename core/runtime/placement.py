"""Where models run: one device rule and one threads rule for torch, CTranslate2 and onnxruntime.

Device: ``auto`` takes the library's GPU where it has one, else the CPU; ``cpu`` is the CPU; ``cuda`` and ``mps``
are honoured where the library can use them, otherwise the CPU, said once. Threads: ``TANTRA_THREADS`` (or the
config key ``threads``), else one per core, given to each CTranslate2 model and onnxruntime session when it is made
(their own pools, so nothing is shared between roles). torch has one setting for the process: it is set once, when
the first torch model loads, and only when the user asked for a number (torch's own default is one per physical
core); it is never switched back and forth around a call. Decoding runs on a thread of its own with one torch
thread (``core.language.language_model``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import cache

from config.settings import Settings


@cache
def gpus_of(library: str) -> frozenset[str]:
    """The GPU kinds ``library`` can run on here (asked once per process: asking torch costs a CUDA probe)."""
    if library == "ctranslate2":
        import ctranslate2

        return frozenset({"cuda"} if ctranslate2.get_cuda_device_count() > 0 else ())
    if library == "onnxruntime":
        import onnxruntime

        return frozenset({"cuda"} if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else ())
    import torch

    found = set()
    if torch.cuda.is_available():
        found.add("cuda")
    if torch.backends.mps.is_available():
        found.add("mps")
    return frozenset(found)


class Placement:
    """The device and thread count of every backend one command (or one server) loads."""

    def __init__(self, settings: Settings, warn: Callable[[str], None]) -> None:
        self.wanted = settings.device
        self.asked_threads = settings.threads
        self.threads = settings.threads or os.cpu_count() or 1
        self.warn = warn
        self._devices: dict[str, str] = {}
        self._lock = threading.Lock()
        self._warned = False
        _numpy_blas_on_one_thread()

    def device(self, library: str) -> str:
        """``cpu``, ``cuda`` or ``mps`` for a backend built on ``library``; decided once per library."""
        with self._lock:
            if library not in self._devices:
                self._devices[library] = self._decide(library)
            return self._devices[library]

    def _decide(self, library: str) -> str:
        if self.wanted == "cpu":
            return "cpu"
        gpus = gpus_of(library)
        if self.wanted == "auto":
            return "cuda" if "cuda" in gpus else "cpu"
        if self.wanted in gpus:
            return self.wanted
        if not self._warned:  # one line for the command, whichever of its libraries finds the GPU missing first
            self.warn(f"{library} cannot use --device {self.wanted} here; running on the CPU")
            self._warned = True
        return "cpu"

    def gpu_asked_and_there(self, library: str) -> bool:
        """Whether the user named a GPU and ``library`` runs on it: chains then take their GPU order."""
        return self.wanted in ("cuda", "mps") and self.device(library) != "cpu"

    def onnx_providers(self) -> list[str]:
        """onnxruntime's execution providers, best first."""
        if self.device("onnxruntime") == "cuda":
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def torch_ready(self) -> None:
        """Give torch the thread count the user asked for, once per process, before the first torch model loads."""
        global _torch_threads_set
        with _torch_lock:
            if self.asked_threads and not _torch_threads_set:
                import torch

                torch.set_num_threads(self.asked_threads)
                _torch_threads_set = True


_torch_lock = threading.Lock()
_torch_threads_set = False


@cache
def _numpy_blas_on_one_thread() -> None:
    """numpy's BLAS (the OpenBLAS in its wheel) on one thread. What numpy multiplies here is small (Whisper's mel
    filters, the echo gate's sums), and after each product OpenBLAS's threads spin, waiting for the next one, on the
    cores CTranslate2, onnxruntime and the decoding kernel need: Whisper's encoder read a turn in 0.13-0.15 s just
    after the turn's mel features were made, 0.07 s with this (tiny.en, 2 cores)."""
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().select(prefix="libscipy_openblas").limit(limits=1)


def compute_type(device: str) -> str:
    """CTranslate2's weights: int8 is the fastest on a CPU with no measurable loss on these models; GPUs prefer
    float16."""
    return "float16" if device == "cuda" else "int8"
