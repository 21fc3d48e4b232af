"""Which C compiler builds SpikingBrain's kernel (``core.models.c_compiler``), and the kernel built by each kind:
gcc's dialect without OpenMP (Apple's clang), and zig from the ziglang wheel (what a Windows user gets from pip)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from core.models import c_compiler, native


@pytest.fixture
def no_compiler_on_the_path(monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(shutil, "which", lambda program: None)


def test_cc_names_the_compiler_and_its_dialect(monkeypatch):
    monkeypatch.setenv("CC", "zig cc")
    assert c_compiler.find_compiler() == c_compiler.Compiler("zig cc", ("zig", "cc"), "gcc")
    monkeypatch.setenv("CC", "cl")
    assert c_compiler.find_compiler().dialect == "msvc"


def test_without_any_compiler_the_kernel_says_what_installs_one(no_compiler_on_the_path, monkeypatch, tmp_path):
    monkeypatch.setattr(c_compiler.importlib.util, "find_spec", lambda name: None)
    assert c_compiler.find_compiler() is None
    with pytest.raises(OSError, match="no C compiler here: .*pip install ziglang"):
        native.build(tmp_path)


def test_msvc_gets_its_own_flags():
    cl = c_compiler.Compiler("cl", ("cl",), "msvc")
    assert cl.flags(("-mavx2", "-mfma"), openmp=True) == ("/nologo", "/O2", "/LD", "/arch:AVX2", "/openmp")
    assert "/openmp" not in cl.flags((), openmp=False)


@pytest.mark.slow  # compiles the kernel
def test_a_compiler_without_openmp_still_builds_a_kernel_that_passes_its_check(tmp_path, monkeypatch):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (the Makefile installs it)")
    refusing = tmp_path / "no-openmp-cc"  # as Apple's clang answers -fopenmp
    refusing.write_text(f'#!/bin/sh\ncase "$*" in *-fopenmp*) echo "error: unsupported option -fopenmp" >&2; '
                        f'exit 1;; esac\nexec {gcc} "$@"\n')  # fmt: skip
    refusing.chmod(0o755)
    monkeypatch.setenv("CC", str(refusing))
    kernel = native.load(tmp_path / "kernels")  # checked against the float64 maths as it loads
    assert kernel.path.parent == tmp_path / "kernels"


@pytest.mark.slow  # compiles the kernel with zig (about 10 s the first time)
def test_the_ziglang_wheel_builds_the_kernel_when_no_other_compiler_is_here(no_compiler_on_the_path, tmp_path):
    compiler = c_compiler.find_compiler()
    assert compiler is not None and compiler.name == "ziglang", "ziglang is pinned in requirements.lock"
    kernel = native.load(tmp_path)  # its OpenMP build does not load (no runtime linked): rebuilt without
    assert kernel.path.suffix == (".dll" if os.name == "nt" else ".dylib" if sys.platform == "darwin" else ".so")
    assert Path(kernel.path).exists()


def test_where_avx512_runs_the_faster_of_it_and_avx2_is_kept_and_remembered(tmp_path, monkeypatch):
    """Whether AVX-512 decodes faster than AVX2 depends on the CPU: both are built and timed once, the faster kept."""
    monkeypatch.setattr(c_compiler, "find_compiler", lambda: c_compiler.Compiler("cc", ("cc",)))
    levels = [("avx512_vnni", ("-mavx512f",)), ("avx2", ("-mavx2",)), ("sse4_1", ("-msse4.1",))]
    monkeypatch.setattr(native, "simd_levels", lambda: levels)

    def build(compiler, name, simd, cache):
        library = cache / f"spike_kernel-{name}-{len(name):016x}{native.SUFFIX}"
        cache.mkdir(exist_ok=True)
        library.touch()
        return library

    timed = []
    monkeypatch.setattr(native, "_build", build)
    monkeypatch.setattr(native, "_decode_seconds", lambda path: timed.append(path.name) or len(path.name))
    assert native.build(tmp_path).name.startswith("spike_kernel-avx2-")  # the shorter name "decodes faster"
    assert len(timed) == 2 and native.build(tmp_path).name.startswith("spike_kernel-avx2-") and len(timed) == 2
    monkeypatch.setattr(native, "simd_levels", lambda: levels[1:])  # AVX2 at best: nothing to time
    assert native.build(tmp_path / "avx2").name.startswith("spike_kernel-avx2-") and len(timed) == 2
