"""``python -m tantra_cli`` as a shell runs it, without paying for Python's start and the CLI's imports at every run.

A zygote process imports the command line once. Each run is a fork of it, given its own arguments, environment,
working directory and standard streams, so whatever a command changes in its process (signal handlers, threads,
``os._exit``) ends with it, as with a fresh ``python``. Only what the zygote imported is already there: the CLI's
own modules, none of the model libraries (torch, numpy, onnxruntime start in the fork, as in a fresh process).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in the zygote: read a request (argv, environment, directory) with three file descriptors for stdin, stdout
# and stderr; fork; answer with the child's pid, then with its exit status once it has ended.
_ZYGOTE = r"""
import json, os, runpy, socket, struct, sys
import tantra_cli.app  # the CLI and what it imports at start: typer, click, rich, the settings

channel = socket.socket(fileno=int(sys.argv[1]))
while True:
    try:
        message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 3)
    except OSError:
        break
    if not message:
        break
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        channel.close()
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [request["main"], *request["args"]]
        code = 0
        try:
            runpy.run_module("tantra_cli", run_name="__main__", alter_sys=True)
        except SystemExit as ended:
            code = ended.code if isinstance(ended.code, int) else (0 if ended.code is None else 1)
            if not isinstance(ended.code, int | None):
                print(ended.code, file=sys.stderr)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        try:  # as a fresh interpreter ends: its threads joined, its exit functions run, its streams flushed
            import atexit, threading
            threading._shutdown()
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    channel.sendall(struct.pack("!i", pid))
    _, status = os.waitpid(pid, 0)
    channel.sendall(struct.pack("!i", os.waitstatus_to_exitcode(status)))
"""


class Zygote:
    """One zygote per test process (xdist worker), started at the first run; runs are one at a time."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self.channel = ours
        self.lock = threading.Lock()
        self.process = subprocess.Popen([sys.executable, "-c", _ZYGOTE, str(theirs.fileno())], cwd=ROOT,
                                        pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL)  # fmt: skip
        theirs.close()

    def run(self, args: list[str], stdin: bytes | None, env: dict, cwd: Path, timeout: float):
        with self.lock, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            with tempfile.TemporaryFile() as given:
                if stdin is not None:
                    given.write(stdin)
                    given.seek(0)
                    source = given.fileno()
                else:
                    source = os.open(os.devnull, os.O_RDONLY)
                request = {"args": args, "env": env, "cwd": str(cwd), "main": str(ROOT / "tantra_cli" / "__main__.py")}
                try:
                    socket.send_fds(self.channel, [json.dumps(request).encode()], [source, out.fileno(), err.fileno()])
                finally:
                    if stdin is None:
                        os.close(source)
                (pid,) = struct.unpack("!i", self._receive(4, 10))
                try:
                    (code,) = struct.unpack("!i", self._receive(4, timeout))
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    self._receive(4, 10)
                    raise subprocess.TimeoutExpired(["tantra", *args], timeout) from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(["tantra", *args], code, out.read(), err.read())

    def _receive(self, size: int, timeout: float) -> bytes:
        self.channel.settimeout(timeout)
        data = b""
        while len(data) < size:
            piece = self.channel.recv(size - len(data))
            if not piece:
                raise RuntimeError("the CLI test zygote died")
            data += piece
        return data


_zygote: Zygote | None = None


def run(args: list[str], stdin: bytes | None, env: dict, timeout: float):
    """``subprocess.run`` of ``python -m tantra_cli ARGS`` in ``ROOT``, its output captured, by a fork of the
    zygote; a fresh process where this system cannot fork."""
    global _zygote
    if not hasattr(os, "fork"):
        return subprocess.run([sys.executable, "-m", "tantra_cli", *args], input=stdin, capture_output=True,
                              stdin=None if stdin is not None else subprocess.DEVNULL, cwd=ROOT, env=env,
                              timeout=timeout)  # fmt: skip
    if _zygote is None or _zygote.process.poll() is not None:
        _zygote = Zygote()
    return _zygote.run(args, stdin, env, ROOT, timeout)
