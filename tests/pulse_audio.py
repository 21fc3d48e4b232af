"""A private PulseAudio daemon with two null sinks, the sound card of the voice-loop device tests.

``tantra_voice`` is Tantra's loudspeaker (the default sink) and ``user_voice`` the user's mouth; Tantra's microphone
is ``user_voice.monitor`` (the default source). What Tantra says is recorded from ``tantra_voice.monitor``. Debian's
ALSA configuration routes PortAudio's ``default`` and ``pulse`` devices to whichever daemon ``PULSE_SERVER`` names,
so a Tantra started with ``env`` talks through these sinks. PortAudio reads that environment once, when
``sounddevice`` is imported: run Tantra in a subprocess with ``env``, not in the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

TANTRA_SINK = "tantra_voice"
USER_SINK = "user_voice"
TOOLS = ("pulseaudio", "pactl", "paplay", "parecord")


class PulseAudio:
    """The daemon, the environment that reaches it, and the few things a test does with its sinks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "native"
        self.log = root / "pulseaudio.log"
        client_conf = root / "client.conf"
        client_conf.write_text("autospawn = no\n")  # a client that cannot reach this daemon must not start another
        self.env = {
            **os.environ,
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(root / "runtime"),  # the daemon's pid file: `pulseaudio --kill` finds it there
            "PULSE_STATE_PATH": str(root / "state"),
            "PULSE_COOKIE": str(root / "cookie"),  # not the user's ~/.config/pulse
            "PULSE_CLIENTCONFIG": str(client_conf),
            "XDG_RUNTIME_DIR": str(root),
            "PULSE_SINK": TANTRA_SINK,
            "PULSE_SOURCE": f"{USER_SINK}.monitor",
        }

    def start(self, timeout: float = 15.0) -> None:
        config = self.root / "default.pa"
        config.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1 auth-cookie-enabled=0\n"
            f"load-module module-null-sink sink_name={TANTRA_SINK} sink_properties=device.description={TANTRA_SINK}\n"
            f"load-module module-null-sink sink_name={USER_SINK} sink_properties=device.description={USER_SINK}\n"
            f"set-default-sink {TANTRA_SINK}\nset-default-source {USER_SINK}.monitor\n"
        )
        # -n: none of the system's default.pa (no real cards, no suspend-on-idle); as root it warns and runs.
        started = subprocess.run(
            ["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n", "-F", str(config),
             f"--log-target=file:{self.log}"],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while started.returncode == 0 and time.monotonic() < deadline:
            if self.pactl("info", check=False).returncode == 0:
                return
            time.sleep(0.1)
        log = self.log.read_text(errors="replace")[-1000:] if self.log.exists() else started.stderr
        self.stop()
        raise RuntimeError(f"PulseAudio did not start: {log.strip()}")

    def stop(self) -> None:
        pid_file = self.root / "runtime" / "pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        subprocess.run(["pulseaudio", "--kill"], env=self.env, capture_output=True, timeout=10)
        # --kill only asks: wait, so that the temporary directory is not removed under a daemon still writing in it
        deadline = time.monotonic() + 5
        while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid is not None and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10, check=check)

    def streams(self, kind: str) -> list[str]:
        """The rows of ``pactl list short KIND`` (``sink-inputs``, ``source-outputs``)."""
        return self.pactl("list", "short", kind).stdout.splitlines()

    def play_into_mic(self, wav: Path) -> None:
        """Say ``wav`` into Tantra's microphone; returns when it has been played."""
        subprocess.run(["paplay", f"--device={USER_SINK}", str(wav)], env=self.env, check=True, timeout=60)

    def record_speaker(self, path: Path) -> AbstractContextManager[Path]:
        """Record what Tantra plays (16 kHz mono WAV at ``path``) while the block runs."""
        return self._record(f"{TANTRA_SINK}.monitor", path)

    def record_mic(self, path: Path) -> AbstractContextManager[Path]:
        """Record what Tantra's microphone hears (the user, and any echo) while the block runs."""
        return self._record(f"{USER_SINK}.monitor", path)

    @contextmanager
    def _record(self, source: str, path: Path) -> Iterator[Path]:
        recorder = subprocess.Popen(
            # 50 ms fragments: with the default (2 s) the end of the reply could still be in flight at the stop
            ["parecord", f"--device={source}", "--file-format=wav", "--rate=16000", "--channels=1",
             "--latency-msec=50", str(path)],
            env=self.env, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            yield path
        finally:
            recorder.send_signal(signal.SIGINT)  # parecord writes the WAV header's lengths when it stops cleanly
            try:
                recorder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                recorder.kill()

    def add_echo(self, gain_db: float = -10.0, latency_ms: int = 80) -> int:
        """Tantra's voice comes back into its microphone, ``gain_db`` down and ``latency_ms`` late; the module index."""
        module = int(self.pactl(
            "load-module", "module-loopback", f"source={TANTRA_SINK}.monitor", f"sink={USER_SINK}",
            f"latency_msec={latency_ms}", "source_dont_move=true", "sink_dont_move=true",
        ).stdout)  # fmt: skip
        # module-loopback has no volume argument: its playback stream is turned down instead.
        listed = json.loads(self.pactl("--format=json", "list", "sink-inputs").stdout)
        inputs = [str(stream["index"]) for stream in listed if stream["owner_module"] == str(module)]
        assert len(inputs) == 1, listed
        self.pactl("set-sink-input-volume", inputs[0], f"{gain_db}dB")
        return module

    def remove_echo(self, module: int) -> None:
        self.pactl("unload-module", str(module))


def portaudio_devices(env: dict[str, str]) -> list[str]:
    """The names PortAudio lists in a process started with ``env``."""
    listed = subprocess.run(
        [sys.executable, "-c", "import sounddevice; print('\\n'.join(d['name'] for d in sounddevice.query_devices()))"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return listed.stdout.splitlines() if listed.returncode == 0 else []


@pytest.fixture(scope="module")
def pulse() -> Iterator[PulseAudio]:
    """A private PulseAudio daemon for the module's tests; they are skipped where PulseAudio cannot run."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install pulseaudio pulseaudio-utils)")
    # A short path: a unix socket's path must fit in 108 bytes, and pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="tantra-pulse-") as root:
        daemon = PulseAudio(Path(root))
        try:
            daemon.start()
        except (RuntimeError, subprocess.SubprocessError) as error:
            pytest.skip(f"PulseAudio cannot run here: {error}")
        try:
            if "pulse" not in portaudio_devices(daemon.env):
                pytest.skip("PortAudio does not reach PulseAudio (Debian: apt-get install libasound2-plugins)")
            yield daemon
        finally:
            daemon.stop()
