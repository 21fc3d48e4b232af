"""A real ``tantra serve`` process with the real models: the official ``openai`` client on every endpoint, the CLI
as its client (``--server``) printing what the local models print, and SIGTERM draining a reply in flight."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile

from tests.conftest import ROOT, run_tantra
from tests.lazy import openai

pytestmark = pytest.mark.slow
KEY = "sk-real-serve-1"
SAMPLE = ROOT / "samples" / "arctic_a0007.wav"


class Served:
    """``tantra serve --port 0`` in a subprocess; ``url`` once it listens, ``log`` what it said on stderr."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tantra_cli", "serve", "--port", "0", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.log: list[str] = []
        self.url = ""
        listening = threading.Event()

        def read() -> None:
            for line in self.process.stderr:
                text = line.decode(errors="replace")
                self.log.append(text)
                if "listening on " in text:
                    self.url = text.split("listening on ", 1)[1].split()[0]
                    listening.set()

        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(240):
            self.process.kill()
            raise AssertionError("tantra serve did not start: " + "".join(self.log))

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


@pytest.fixture(scope="module")
def served():
    server = Served("--api-key", KEY)
    yield server
    if server.process.poll() is None:
        server.process.kill()


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served.url, api_key=KEY, max_retries=0, timeout=120)


def test_every_endpoint_through_the_openai_client(client):
    reply = client.chat.completions.create(model="spikingbrain-smollm2-135m", temperature=0, max_tokens=12,
                                           messages=[{"role": "user", "content": "Name a colour."}])  # fmt: skip
    assert reply.choices[0].message.content.strip() and reply.usage.completion_tokens <= 12
    stream = client.chat.completions.create(model="tantra", max_tokens=12, stream=True,
                                            messages=[{"role": "user", "content": "Say hello."}])  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip()

    heard = client.audio.transcriptions.create(model="whisper-1", file=SAMPLE.open("rb"),
                                               response_format="verbose_json",
                                               timestamp_granularities=["word", "segment"])  # fmt: skip
    assert "superlative degree" in heard.text and heard.language == "en" and len(heard.words) >= 8

    spoken = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.", response_format="flac")
    samples, rate = soundfile.read(io.BytesIO(spoken.content))
    assert rate == 22050 and 0.4 < len(samples) / rate < 3 and np.abs(samples).max() > 0.1

    vectors = client.embeddings.create(model="all-minilm-l6-v2", input=["a cat", "a kitten", "tax law"]).data
    a, b, c = (np.asarray(v.embedding) for v in vectors)
    assert len(a) == 384 and a @ b > a @ c  # the model itself, not noise


def test_the_cli_through_the_server_prints_what_the_local_models_print(served, tmp_path):
    env = {"TANTRA_SERVER_API_KEY": KEY}
    local = run_tantra("transcribe", str(SAMPLE))
    remote = run_tantra("--server", served.root, "transcribe", str(SAMPLE), env=env)
    assert remote.returncode == 0 and remote.stdout == local.stdout and remote.stderr == b"", remote.stderr
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("meeting notes, not a recording")
    local = run_tantra("transcribe", str(not_audio))
    remote = run_tantra("--server", served.root, "transcribe", str(not_audio), env=env)
    assert remote.returncode == local.returncode == 1 and remote.stderr == local.stderr, (remote.stderr, local.stderr)
    image = tmp_path / "red.png"
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 20, 20)).save(image)
    local = run_tantra("describe", "--json", str(image))
    remote = run_tantra("--server", served.root, "describe", "--json", str(image), env=env)
    assert remote.returncode == 0 and remote.stdout == local.stdout
    question = ("chat", "-t", "0", "-n", "24", "--no-log", "--no-memory", "Name three colours.")
    local = run_tantra(*question)
    for _ in range(2):  # the same prompt again is read afresh, as here: greedy answers do not drift
        remote = run_tantra("--server", served.root, *question, env=env)
        assert remote.returncode == 0 and remote.stdout == local.stdout and remote.stderr == b"", remote.stderr
    refused = run_tantra("--server", served.root, "transcribe", str(SAMPLE))  # no key
    assert refused.returncode == 0 and b"401" in refused.stderr and refused.stdout == local_transcript()
    assert KEY.encode() not in b"".join(line.encode() for line in served.log)


def local_transcript() -> bytes:
    return run_tantra("transcribe", str(SAMPLE)).stdout


def test_sigterm_lets_the_reply_in_flight_finish():
    server = Served("--lazy")
    client = openai.OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=120)
    sea = [{"role": "user", "content": "Tell me about the sea."}]
    stream = client.chat.completions.create(model="tantra", max_tokens=60, temperature=0, stream=True,
                                            stream_options={"include_usage": True}, messages=sea)  # fmt: skip
    chunks = iter(stream)
    next(chunks)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    rest = list(chunks)
    assert rest[-1].usage.completion_tokens == 60  # every token of the reply came
    assert server.process.wait(60) == 0 and time.monotonic() - started < 60
