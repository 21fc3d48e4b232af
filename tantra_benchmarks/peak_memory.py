"""A child process's exit code and peak resident memory, on every system. Small on purpose: the launcher that
measures a command imports it, and a forked child counts its parent's pages until it execs."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def wait_for_peak(child: subprocess.Popen) -> tuple[int, int]:
    """Wait for ``child``; its exit code and peak RSS in MB. POSIX systems report the peak at exit (``wait4``: KiB on
    Linux, bytes on macOS); Windows has no wait4, so there the system's own peak working set is read until it ends."""
    if hasattr(os, "wait4"):
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        return child.returncode, round(usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10))
    import psutil

    watched, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, watched.memory_info().peak_wset)
        except psutil.Error:
            break
        time.sleep(0.05)
    return child.wait(), round(peak / 2**20)
