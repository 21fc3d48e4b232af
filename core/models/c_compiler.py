"""The C compiler that builds SpikingBrain's kernel, whichever this machine has: ``$CC``, ``cc``, ``gcc``, ``clang``,
MSVC's ``cl``, or ``ziglang`` from PyPI (``python -m ziglang cc``: a whole clang toolchain in a wheel, the one
compiler a Windows user gets with pip alone). Each speaks one of two dialects, gcc's flags or MSVC's.

OpenMP is asked for and dropped when the compiler lacks it (Apple's clang has no ``-fopenmp``; zig accepts the flag
and links no OpenMP): the kernel then runs on one thread, which is still its default and about 2.5x faster than
PyTorch's path.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class CompilerFailed(OSError):
    """The compiler ran and refused the sources (its last line of errors says why)."""


@dataclass(frozen=True)
class Compiler:
    """A C compiler's command line and its dialect ("gcc" for gcc, clang and zig; "msvc" for cl)."""

    name: str
    command: tuple[str, ...]
    dialect: str = "gcc"

    def version(self) -> str:
        """What the compiler says of its version: part of the built library's cache key."""
        asked = [*self.command] if self.dialect == "msvc" else [*self.command, "--version"]  # cl prints it bare
        try:
            done = subprocess.run(asked, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as error:
            raise OSError(f"{self.name} does not run ({error})") from None
        return (done.stdout + done.stderr).strip()

    def flags(self, simd: tuple[str, ...], openmp: bool) -> tuple[str, ...]:
        """The flags of a shared library at full optimisation, with ``simd`` (gcc's spelling) and OpenMP."""
        if self.dialect == "msvc":
            arch = ("/arch:AVX512",) if "-mavx512f" in simd else ("/arch:AVX2",) if "-mavx2" in simd else ()
            return ("/nologo", "/O2", "/LD", *arch, *(("/openmp",) if openmp else ()))
        # team.c's POSIX threads need no -pthread: they are in libc (glibc 2.34+, macOS), or already loaded by Python
        pic = () if sys.platform == "win32" else ("-fPIC",)
        # no errno: nearbyintf and fabsf stay inline
        return ("-O3", "-shared", *pic, "-fno-math-errno", *(("-fopenmp",) if openmp else ()), *simd)

    def build(self, sources: tuple[Path, ...], output: Path, simd: tuple[str, ...]) -> bool:
        """Compile ``sources`` into the shared library ``output``; whether it has OpenMP. Raises
        ``CompilerFailed`` when the compiler refuses even without OpenMP. A library built with OpenMP must also load:
        zig compiles the pragmas into calls of an OpenMP runtime that it does not link."""
        failure = ""
        for openmp in (True, False):
            flags = self.flags(simd, openmp)
            if self.dialect == "msvc":
                command = [*self.command, *flags, *map(str, sources), f"/Fe{output}", f"/Fo{output.parent}\\"]
            else:
                command = [*self.command, *flags, "-o", str(output), *map(str, sources), "-lm"]
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=output.parent)
            if done.returncode != 0:
                failure = ((done.stderr or done.stdout).strip().splitlines() or ["?"])[-1]
            elif not openmp:
                return False
            else:
                try:
                    ctypes.CDLL(str(output))
                    return True
                except OSError as error:
                    failure = str(error)
                    output.unlink()
        raise CompilerFailed(f"{self.name} failed: {failure}")


def _named(program: str) -> Compiler:
    """``$CC``'s compiler: its own words (``CC="zig cc"`` is two), and MSVC's dialect where it is ``cl``."""
    command = tuple(shlex.split(program, posix=os.name != "nt"))
    stem = Path(command[0]).stem.lower()
    return Compiler(program if len(command) > 1 else stem, command, "msvc" if stem == "cl" else "gcc")


def find_compiler() -> Compiler | None:
    """The first C compiler here: ``$CC``, then cc, gcc, clang and cl on the PATH, then the ziglang wheel."""
    if os.environ.get("CC"):
        return _named(os.environ["CC"])
    for program in ("cc", "gcc", "clang", "cl"):
        path = shutil.which(program)
        if path:
            return Compiler(program, (path,), "msvc" if program == "cl" else "gcc")
    if importlib.util.find_spec("ziglang") is not None:
        return Compiler("ziglang", (sys.executable, "-m", "ziglang", "cc"))
    return None


def install_hint() -> str:
    """The command that gives this operating system a C compiler."""
    if sys.platform == "win32":
        return "pip install ziglang (or Visual Studio's Build Tools)"
    if sys.platform == "darwin":
        return "xcode-select --install (or pip install ziglang)"
    return "apt-get install gcc (or pip install ziglang)"
