"""What the CPU is and which vector extensions it runs, on Linux, macOS and Windows: the kernel's build flags and every
benchmark's machine line need them. Linux lists both in ``/proc/cpuinfo``; macOS answers ``sysctl``; Windows answers
``IsProcessorFeaturePresent`` and the registry. Anything that cannot be read is left out, never guessed."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import cache
from pathlib import Path

EXTENSIONS = ("sse4_1", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_int8",
              "amx_bf16")
"""The extensions anyone here asks about, in /proc/cpuinfo's spelling."""

# Windows' PF_* numbers (winnt.h) and macOS's hw.optional names for the same extensions.
_WINDOWS_FEATURES = {"sse4_1": 37, "avx2": 40, "avx512f": 41}
_MAC_FEATURES = {"sse4_1": "hw.optional.sse4_1", "avx2": "hw.optional.avx2_0", "fma": "hw.optional.fma",
                 "avx512f": "hw.optional.avx512f", "avx512bw": "hw.optional.avx512bw",
                 "avx512vl": "hw.optional.avx512vl", "avx512_vnni": "hw.optional.avx512vnni"}  # fmt: skip


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's
    return fields


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@cache
def cpu_flags() -> frozenset[str]:
    """The extensions of ``EXTENSIONS`` this CPU runs (empty where they cannot be read, or on ARM)."""
    if sys.platform == "win32":
        import ctypes

        present = ctypes.windll.kernel32.IsProcessorFeaturePresent
        return frozenset(name for name, number in _WINDOWS_FEATURES.items() if present(number))
    if sys.platform == "darwin":
        return frozenset(name for name, key in _MAC_FEATURES.items() if _sysctl(key) == "1")
    listed = set(_cpuinfo().get("flags", "").split())
    return frozenset(name for name in EXTENSIONS if name in listed)


@cache
def cpu_name() -> str:
    """The CPU's marketing name where the system gives it, else the architecture."""
    if sys.platform == "darwin":
        name = _sysctl("machdep.cpu.brand_string")
    elif sys.platform == "win32":
        name = _windows_cpu_name()
    else:
        name = _cpuinfo().get("model name", "")
    return name or platform.processor() or platform.machine()


def _windows_cpu_name() -> str:
    try:
        import winreg

        key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0")
        return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
    except OSError:
        return ""
