"""SpikingBrain's fused decoding kernels (``native/spike_kernel.c``, ``native/decode_step.c``), built once per machine
with whichever C compiler it has (``core.models.c_compiler``).

Decoding a token is one pass over every weight, and in eager PyTorch each spiking projection cost a dozen small
operations (threshold, counts, per-group INT8 products, scales, sums) whose dispatch outweighed the arithmetic.
The C function does a projection in one call: spike coding and every group's exact integer sum, in one pass over
the weights, split over the cores by OpenMP. It is compiled with ``-O3`` and the vector extension the CPU runs
(AVX-512 where it decodes faster than AVX2, timed once; AVX2; SSE4.1; never ``-march=native``, which on a machine
advertising more than it runs, such as AMX, can build an illegal instruction), cached under the model store by the
hash of the source, flags and compiler, and checked against the same maths in numpy before it is used. Without a
compiler, or if the check fails, the model keeps its PyTorch path and says why once.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SOURCES = tuple(Path(__file__).with_name("native") / name
                for name in ("spike_kernel.c", "q4_kernel.c", "decode_step.c", "team.c"))  # fmt: skip
HEADER = Path(__file__).with_name("native") / "spike_kernel.h"
SIMD = (("avx512_vnni", ("avx512f", "avx512bw", "avx512vl", "avx512_vnni"),
         ("-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni")),
        ("avx2", ("avx2", "fma"), ("-mavx2", "-mfma", "-mf16c")),
        ("sse4_1", ("sse4_1",), ("-msse4.1",)))  # fmt: skip
"""The vector extensions used where the CPU runs them, best first: a name, the CPU flags it needs, gcc's flags.
Whether AVX-512 decodes faster depends on the CPU, so where it runs, AVX2 is built too and both are timed
(``build``): on an AMD EPYC AVX-512 decoded SmolLM2 at 47 tokens/s against AVX2's 58 (gcc's vectorization, before
the kernel's own intrinsics); on an Intel Xeon with AMX at 57-59 against 50-51 (``vpdpwssd`` on the int16 counts)."""
TIMED_SHAPES = (30, ((960, 576), (576, 576), (3072, 576), (576, 1536))), (1, ((49152, 576),))
"""``build``'s timing: SmolLM2-135M's projections (out, in) in its 30 layers, and its head, as INT8 weights (134 MB:
decoding streams them, and a CPU's caches hold part of them), then the projections as 4-bit weights."""
SUFFIX = {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")


def simd_levels() -> list[tuple[str, tuple[str, ...]]]:
    """``SIMD``'s names and gcc flags this CPU runs, best first; none where that is unknown (the compiler's
    baseline)."""
    from core.runtime.cpu_facts import cpu_flags

    flags = cpu_flags()
    return [(name, gcc) for name, needs, gcc in SIMD if set(needs) <= flags]


class Kernel:
    """The loaded library: ``spiking_linear`` on tensors' memory (the caller keeps the tensors alive)."""

    def __init__(self, library: ctypes.CDLL, path: Path) -> None:
        self.path, self.library = path, library
        self.simd = path.stem.split("-")[1]
        """The vector extension it was built for (``SIMD``'s name; "baseline": none asked)."""
        self._linear = library.spiking_linear
        pointer, integer = ctypes.c_void_p, ctypes.c_int
        real = ctypes.c_float
        self._linear.argtypes = [pointer, integer, integer, pointer, real, real, pointer, pointer, integer, integer,
                                 integer, pointer, pointer, pointer, pointer, integer]  # fmt: skip
        self.threads = 1
        """OpenMP threads of a one-token call (decoding per projection)."""
        self.prompt_threads = 1
        """Those of a call on several tokens (a prompt's): nothing else runs while a prompt is read, and two threads
        read a 25-token voice turn in 0.08 s against 0.13 (2 cores)."""
        self._linear.restype = None
        self._q4_linear = library.q4_linear
        self._q4_linear.argtypes = [pointer, integer, integer, pointer, real, real, pointer, pointer, integer, integer,
                                    pointer, pointer, integer]  # fmt: skip
        self._q4_linear.restype = None

    def spiking_linear(self, x, rows: int, in_features: int, k: float, weight, scale, shape: tuple[int, int, int],
                       bias, y, counts, v_th, norm: tuple[int, float] | None = None) -> None:  # fmt: skip
        """Raw pointers (``tensor.data_ptr()``, numpy's ``ctypes.data``) to C-contiguous buffers: ``x`` (rows,
        in_features) fp32, ``weight`` (out, groups, width) int8 (``shape`` gives groups, out, width), ``scale``
        (groups, out) bfloat16, ``bias`` (out,) fp32 or None; written: ``y`` (rows, out) fp32, ``counts`` (rows,
        groups * width) int16, ``v_th`` (rows,) fp32. ``norm`` (a weight's pointer, eps): RMS-normalise each row
        first."""
        groups, out, width = shape
        norm_weight, eps = norm if norm is not None else (None, 0.0)
        self._linear(x, rows, in_features, norm_weight, eps, k, weight, scale, groups, out, width, bias, y, counts,
                     v_th, self._threads(rows))  # fmt: skip

    def q4_linear(self, x, rows: int, in_features: int, k: float, weight, dm, shape: tuple[int, int], bias, y,
                  norm: tuple[int, float] | None = None) -> None:  # fmt: skip
        """The same with 4-bit weights (``spike_coding.pack_q4``): ``weight`` (out, groups * 16) uint8, ``dm`` (out,
        groups, 2) float16 (``shape`` gives out, groups); nothing else written."""
        out, groups = shape
        norm_weight, eps = norm if norm is not None else (None, 0.0)
        self._q4_linear(x, rows, in_features, norm_weight, eps, k, weight, dm, groups, out, bias, y,
                        self._threads(rows))

    def _threads(self, rows: int) -> int:
        return self.prompt_threads if rows > 1 else self.threads


def build(cache: Path) -> Path:
    """The compiled library for this source and compiler, built into ``cache`` if it is not there yet. Where the CPU
    runs AVX-512, AVX2 is built too, both are timed once, and the faster is kept (its name written beside them)."""
    from core.models.c_compiler import find_compiler, install_hint

    compiler = find_compiler()
    if compiler is None:
        raise OSError(f"no C compiler here: {install_hint()}")
    levels = simd_levels() or [("baseline", ())]
    timed = levels[:2] if levels[0][0] == "avx512_vnni" else levels[:1]
    built = [_build(compiler, name, flags, cache) for name, flags in timed]
    if len(built) == 1:
        return built[0]
    choice = cache / ("faster-" + "-".join(path.stem.split("-")[2] for path in built) + ".txt")
    if choice.exists() and (cache / choice.read_text().strip()).exists():
        return cache / choice.read_text().strip()
    faster = min(built, key=_decode_seconds)
    _write_atomically(choice, faster.name)
    return faster


def _build(compiler, name: str, simd: tuple[str, ...], cache: Path) -> Path:
    """The library for one of ``SIMD``'s extensions, named after it and keyed by the source, flags and compiler."""
    sources = b"".join(source.read_bytes() for source in (*SOURCES, HEADER))
    flags = " ".join(compiler.flags(simd, openmp=True))
    key = hashlib.sha256(sources + flags.encode() + compiler.version().encode()).hexdigest()[:16]
    target = cache / f"spike_kernel-{name}-{key}{SUFFIX}"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as staging:  # built aside, renamed in: never half a library
        built = Path(staging) / target.name
        compiler.build(SOURCES, built, simd)
        os.replace(built, target)
    return target


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as staged:
        staged.write(text)
    os.replace(staged.name, path)


def _decode_seconds(path: Path) -> float:
    """How long the library takes to decode a token through ``TIMED_SHAPES`` in INT8 and in 4 bits, best of three;
    infinity if it fails its check."""
    try:
        kernel = Kernel(ctypes.CDLL(str(path)), path)
        _check(kernel)
    except OSError:
        return float("inf")
    rng = np.random.default_rng(0)
    noise = rng.integers(-127, 128, 1 << 20, dtype=np.int8)  # the values do not change the time
    calls, alive = [], []  # the kernel gets raw pointers: their arrays stay here
    for repeats, shapes in TIMED_SHAPES:
        for out, in_features in shapes * repeats:
            groups = -(-in_features // 128)
            x = rng.standard_normal(in_features).astype(np.float32)
            weight = np.resize(noise, (out, groups, 128))
            scale = np.full((groups, out), 0x3C00, np.uint16)  # bfloat16 0.0078
            y, counts, v_th = np.empty(out, np.float32), np.empty(groups * 128, np.int16), np.empty(1, np.float32)
            alive += [x, weight, scale, y, counts, v_th]
            calls.append(functools.partial(kernel.spiking_linear, x.ctypes.data, 1, in_features, 4.0,
                                           weight.ctypes.data, scale.ctypes.data, (groups, out, 128), None,
                                           y.ctypes.data, counts.ctypes.data, v_th.ctypes.data))  # fmt: skip
            if repeats > 1:  # the projections in 4 bits too (the head stays INT8)
                packed = np.resize(noise.view(np.uint8), (out, in_features // 2))
                dm = np.full((out, in_features // 32, 2), 0.01, np.float16)
                alive += [packed, dm]
                calls.append(functools.partial(kernel.q4_linear, x.ctypes.data, 1, in_features, 4.0,
                                               packed.ctypes.data, dm.ctypes.data, (out, in_features // 32), None,
                                               y.ctypes.data))  # fmt: skip
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for call in calls:
            call()
        best = min(best, time.perf_counter() - start)
    return best


def _reference(x: np.ndarray, k: float, weight: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The spike maths in float64, for the self-check."""
    groups, out, width = weight.shape
    v_th = np.maximum(np.abs(x).mean(-1, keepdims=True) / k, 1e-8)
    counts = np.round(x / v_th)
    counts = np.pad(counts, ((0, 0), (0, groups * width - x.shape[1]))).reshape(len(x), groups, width)
    sums = np.einsum("rgi,goi->rgo", counts, weight.astype(np.float64))
    return (sums * scale[None].astype(np.float64)).sum(1) * v_th + bias


def q4_weights(packed: np.ndarray, dm: np.ndarray) -> np.ndarray:
    """4-bit weights (out, groups * 16) with their (out, groups, 2) scales and minimums as (out, groups * 32)."""
    out, groups = dm.shape[:2]
    bytes_ = packed.reshape(out, groups, 16)
    q = np.concatenate([bytes_ & 15, bytes_ >> 4], axis=-1).astype(np.float64)
    return (q * dm[..., :1] + dm[..., 1:]).reshape(out, groups * 32)


def _q4_reference(x: np.ndarray, k: float, packed: np.ndarray, dm: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The 4-bit spike maths in float64."""
    weight = q4_weights(packed, dm)[:, : x.shape[1]]
    v_th = np.maximum(np.abs(x).mean(-1, keepdims=True) / k, 1e-8)
    return (np.round(x / v_th) @ weight.T) * v_th + bias


def _check(kernel: Kernel) -> None:
    """Run the kernel on random inputs against the float64 reference: a miscompiled library is never used."""
    rng = np.random.default_rng(0)
    groups, out, width, in_features, rows = 3, 37, 64, 150, 2
    x = (rng.standard_normal((rows, in_features)) * np.array([1.0, 40.0])[:, None]).astype(np.float32)
    x[1, 7] = 20000.0  # a count far beyond int8 (about 480)
    weight = rng.integers(-127, 128, (groups, out, width), dtype=np.int8)
    scale = (rng.random((groups, out), dtype=np.float32) / 100).view(np.uint32) >> 16  # bfloat16: the top half
    scale = scale.astype(np.uint16)
    bias = rng.standard_normal(out).astype(np.float32)
    y = np.empty((rows, out), np.float32)
    counts, v_th = np.empty((rows, groups * width), np.int16), np.empty(rows, np.float32)
    rows_first = np.ascontiguousarray(weight.transpose(1, 0, 2))  # the kernel's layout: (out, groups, width)
    kernel.spiking_linear(x.ctypes.data, rows, in_features, 4.0, rows_first.ctypes.data, scale.ctypes.data,
                          (groups, out, width), bias.ctypes.data, y.ctypes.data, counts.ctypes.data,
                          v_th.ctypes.data)  # fmt: skip
    scale32 = (scale.astype(np.uint32) << 16).view(np.float32)
    expected = _reference(x.astype(np.float64), 4.0, weight, scale32, bias.astype(np.float64))
    if not np.allclose(y, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()):
        raise OSError("the compiled kernel disagrees with the reference maths")
    q4_groups = -(-in_features // 32)  # the 4-bit kernel on the same inputs
    packed = rng.integers(0, 256, (out, q4_groups * 16), dtype=np.uint8)
    dm = (rng.random((out, q4_groups, 2), dtype=np.float32) / 100 - 0.005).astype(np.float16)
    kernel.q4_linear(x.ctypes.data, rows, in_features, 4.0, packed.ctypes.data, dm.ctypes.data, (out, q4_groups),
                     bias.ctypes.data, y.ctypes.data)  # fmt: skip
    expected = _q4_reference(x.astype(np.float64), 4.0, packed, dm.astype(np.float64), bias.astype(np.float64))
    if not np.allclose(y, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()):
        raise OSError("the compiled 4-bit kernel disagrees with the reference maths")


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next allocation instead of returning it to the system.

    A prompt's products make temporaries of several MB per projection, and glibc's defaults hand each back to the
    kernel and fault it in again at the next one: a 1,757-token prompt spent more time in the kernel (system time)
    than computing. With these limits the 200-token prompt reads at 560 instead of 480 tokens/s here, the 1,757-token
    one in 3.2 s instead of 5.2 s. Process-wide, and only for glibc (elsewhere nothing changes)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # glibc's ceiling for it on 64-bit machines
    libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    libc.mallopt(_M_TOP_PAD, 64 * 1024 * 1024)


def load(cache: Path) -> Kernel:
    """Build (once) and load the kernel; OSError says why it cannot be used here."""
    path = build(cache)
    kernel = Kernel(ctypes.CDLL(str(path)), path)
    _check(kernel)
    return kernel
