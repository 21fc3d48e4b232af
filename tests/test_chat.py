"""The chat: session commands on the real model, and the REPL driven through a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from dataclasses import replace

import pytest

from config.errors import BadInput
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # every test here runs the real models


@pytest.fixture(scope="module")
def session(settings):
    from config.model_config import MODEL_CONFIG
    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions
    from core.model_loader import ModelLoader

    loaded = ModelLoader(MODEL_CONFIG, settings).load_spikingbrain()
    return ChatSession(loaded["chat"], SamplingOptions(temperature=0, max_tokens=24))


def test_session_answers_keeps_turns_and_reports_stats(session):
    session.command("/clear")
    reply = "".join(session.ask("What is the capital of France? Answer in one sentence."))
    assert "Paris" in reply
    assert [m["role"] for m in session.conversation.messages] == ["user", "assistant"]
    assert session.last.completion_tokens > 0 and not session.last.interrupted
    stats = session.command("/stats")
    assert "tokens/s" in stats and "silent" in stats and "sparsity" in stats
    assert "llama family" in session.command("/model") and "spiking on" in session.command("/model")


def test_an_interrupted_reply_keeps_what_was_said(session):
    session.command("/clear")
    reply = session.ask("Tell me a story.")
    first = next(reply)
    reply.close()  # what Ctrl-C does to the generator in the REPL
    assert session.last.interrupted
    assert session.conversation.messages[-1] == {"role": "assistant", "content": first.strip()}


def test_a_prompt_longer_than_the_context_is_refused_and_not_kept(session):
    before = list(session.conversation.messages)
    with pytest.raises(BadInput, match="context holds 8192"):
        next(session.ask("word " * 9000))
    assert session.conversation.messages == before  # the turn that could not be asked is not kept


class Terminal:
    """A program on a pseudo-terminal of its own, read and typed into as a person would."""

    ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]|\r")

    def __init__(self, *args: str, env: dict) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal, so Ctrl-C reaches it as SIGINT
            # As an interactive shell does for a foreground job: a test run started in the background (as CI may
            # be) ignores SIGINT, and an ignored signal stays ignored across exec.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "tantra_cli", *args], env)
        self.pid, self.fd, self.text, self.seen = pid, fd, "", 0
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def _read(self, timeout: float) -> None:
        if select.select([self.fd], [], [], timeout)[0]:
            try:
                self.text += self.ANSI.sub("", os.read(self.fd, 65536).decode(errors="replace"))
            except OSError:  # the program closed the terminal
                time.sleep(timeout)

    def expect(self, pattern: str, timeout: float = 180) -> str:
        """Wait until ``pattern`` shows after what was matched before; returns the text up to it."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.text[self.seen :])
            if match:
                before = self.text[self.seen : self.seen + match.end()]
                self.seen += match.end()
                return before
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the terminal: {self.text[-2000:]!r}")
            self._read(0.2)

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def exit_code(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                return os.waitstatus_to_exitcode(status)
            self._read(0.1)
        raise AssertionError(f"the program did not exit: {self.text[-2000:]!r}")

    def close(self) -> None:
        """Whatever happened, leave no program behind."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def terminal(settings, tmp_path):
    """Starts programs on terminals of their own, and ends them after the test, passed or failed."""
    # One thread: under a busy CI machine, two OpenMP threads that wait for each other can slow a forward pass
    # fifty-fold, and these tests are about the terminal, not speed.
    env = {**os.environ, "TANTRA_HOME": str(settings.home), "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1",
           "HOME": str(tmp_path), "TANTRA_THREADS": "1"}  # fmt: skip
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        started.append(Terminal(*args, env=env))
        return started[-1]

    yield start
    for program in started:
        program.close()


def test_repl_in_a_real_terminal(settings, terminal):
    repl = terminal("chat", "--temperature", "0", "--max-tokens", "40")
    repl.expect(r"\n>>>")
    repl.type("What is the capital of France? Answer in one sentence.\r")
    assert "Paris" in repl.expect(r"\n>>>")
    repl.type("/set max_tokens 2000\r")  # a reply long enough that Ctrl-C surely lands in it, however busy the machine
    repl.expect(r"max_tokens = 2000")
    repl.type("Write a long story about a dragon and a knight.\r")
    repl.expect(r"knight\.\n[^>\n]{20}")  # the reply streams (the echo of the typed line is followed by >>>)
    repl.type("\x03")  # Ctrl-C mid-reply: the reply stops, the session stays
    repl.expect(r"\(stopped\)")
    repl.expect(r"\n>>>")
    repl.type("/set temperature 0.2\r")
    repl.expect(r"temperature = 0\.2")
    repl.type("/frob\r")
    repl.expect(r"unknown command /frob")
    repl.type("/stats\r")
    repl.expect(r"stopped early")
    repl.type("/quit\r")
    assert repl.exit_code() == 0
    history = (settings.home / "chat_history").read_text()
    assert "What is the capital of France?" in history and "/quit" in history


def test_ctrl_c_while_the_model_loads_exits_cleanly(terminal):
    repl = terminal("chat")
    repl.expect("loading the language model")
    repl.type("\x03")
    repl.expect("interrupted")
    assert repl.exit_code() == 130
    assert "Traceback" not in repl.text


def test_a_ctrl_c_python_swallowed_in_a_callback_still_stops_the_command():
    """The race behind a Ctrl-C lost while the model loaded: the signal landed in an import lock's weakref callback,
    where Python can only print "Exception ignored". Here a ``__del__`` stands in for that callback."""
    import subprocess

    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # as from a terminal (a background job ignores it)
        "from tantra_cli.common import redeliver_swallowed_interrupts\n"
        "redeliver_swallowed_interrupts()\n"
        "class Callback:\n"
        "    def __del__(self):\n"
        "        raise KeyboardInterrupt\n"
        "try:\n"
        "    Callback()\n"
        "    for _ in range(500):\n"  # 5 s of a loading model's steps
        "        time.sleep(0.01)\n"
        "    print('went on')\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "stopped"
    assert "Exception ignored" not in done.stderr


def test_images_in_messages_and_the_image_command_reach_the_model(session, settings, tmp_path):
    """SpikingBrain reads an image as text: what the classifier sees, in place of the pixels."""
    import skimage.data
    from PIL import Image

    from config.model_config import MODEL_CONFIG
    from core.language.chat_session import ChatSession
    from core.model_loader import ModelLoader
    from core.vision.describer import ImageDescriber

    Image.fromarray(skimage.data.coffee()).save(tmp_path / "my coffee.png")
    describer = ImageDescriber(ModelLoader(MODEL_CONFIG, settings), ocr=False)
    chat = ChatSession(session.model, session.options, describer=describer)
    chat.options = replace(chat.options, max_tokens=4)
    assert "espresso" in chat.command(f"/image {tmp_path / 'my coffee.png'}")
    "".join(chat.ask("What is this?"))
    note, question = chat.conversation.messages[:2]  # the label in a system note just before the question
    assert note["role"] == "system" and note["content"].startswith("The picture my coffee.png shows: espresso")
    assert question == {"role": "user", "content": "What is this?"}
    shown: list[str] = []
    chat.on_image = shown.append  # the REPL shows the person what the model was told
    "".join(chat.ask(f'And what is in "{tmp_path / "my coffee.png"}"?'))
    assert chat.conversation.messages[3]["content"].startswith("The picture my coffee.png shows:")
    assert len(shown) == 1 and shown[0].startswith("[Image my coffee.png: Looks like espresso")
    "".join(chat.ask("No image here."))
    assert chat.conversation.messages[-2] == {"role": "user", "content": "No image here."}
    assert chat.conversation.messages[-3]["role"] == "assistant"  # an attachment goes with one message: no note
    with pytest.raises(BadInput, match="no such file"):
        chat.command("/image /nonexistent.png")
