"""``tantra serve`` with fake backends, on uvicorn on 127.0.0.1, through the official ``openai`` client: every
endpoint, streaming included; keys, limits, queues, clients that leave mid-stream, a bounded load test.

The real models behind a real ``tantra serve`` process are in ``test_serve_real.py``.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile
from PIL import Image

from config.errors import BadInput, ModelUnavailable, TantraError
from config.model_config import MODEL_CONFIG
from config.settings import load_settings
from core.model_loader import ModelLoader
from core.runtime.openai_http import Endpoint
from tantra_server.app import ServeOptions, create_app
from tests.conftest import ROOT
from tests.fakes import PROMPTS_READ, FakeClassifier, FakeEmbedder, FakeVoice, FakeWhisper, fake_language_model
from tests.lazy import openai

KEY = "sk-serve-test-7e57"


def fake_loader(reply=None) -> ModelLoader:
    backends = {
        "language:spikingbrain": lambda: fake_language_model(reply=reply),
        "hearing:faster-whisper": FakeWhisper,
        "vision:onnxruntime": FakeClassifier,
        "memory:onnxruntime": FakeEmbedder,
        **{f"voice:{name}": FakeVoice for name in ("coqui", "piper", "espeak-ng")},
    }
    return ModelLoader(MODEL_CONFIG, load_settings({}, environ={}), warn=lambda _: None, backends=backends)


@contextmanager
def serving(app):
    """``app`` on uvicorn in a thread, on a free port; yields its ``/v1`` URL."""
    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    allowed = tmp_path_factory.mktemp("allowed")
    Image.new("RGB", (32, 32), (10, 200, 10)).save(allowed / "green.png")
    options = ServeOptions(api_key=KEY, allow_dirs=(allowed,), max_body_bytes=3 * 1024 * 1024,
                           max_audio_seconds=60, ocr=False)  # fmt: skip
    with serving(create_app(fake_loader(), options)) as url:
        yield url, allowed


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0], api_key=KEY, max_retries=0)


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    soundfile.write(out, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format="WAV")
    return out.getvalue()


def data_url(colour) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def ask(text_or_parts) -> list[dict]:
    return [{"role": "user", "content": text_or_parts}]


# ---- models, keys ----------------------------------------------------------------------------------------------------


def test_models_are_listed_with_the_language_model_first(client):
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "fake-lm" and "fake" in ids and "fake-embedder" in ids
    assert client.models.retrieve("fake-lm").owned_by == "tantra"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5")


def test_every_route_but_health_needs_the_key(server):
    url = server[0]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
    request = urllib.request.Request(url + "/chat/completions", b"{}", {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 401 and b"invalid_api_key" in refused.value.read()
    with urllib.request.urlopen(url.removesuffix("/v1") + "/health") as health:
        assert health.status == 200


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", b"{", b"null"])
def test_a_body_that_is_not_a_shallow_json_object_is_a_400(server, body):
    """The parser's own stack gives out at "[" x 100,000 (a RecursionError, once a 500); 65 levels is past the limit
    though it parses; the others are not JSON objects."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    request = urllib.request.Request(server[0] + "/chat/completions", body, headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400
    message = json.loads(refused.value.read())["error"]["message"]
    assert ("nested more than 64 levels" in message) == (body.startswith(b"[[") or body.startswith(b'{"a"'))


# ---- chat ------------------------------------------------------------------------------------------------------------


def test_chat_completion_whole_and_streamed(client):
    whole = client.chat.completions.create(model="fake-lm", messages=ask("hi there"), temperature=0, seed=3)
    assert whole.choices[0].message.content == "You said: hi there."
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage.completion_tokens == len("You said: hi there.") and whole.usage.prompt_tokens > 0
    stream = client.chat.completions.create(model="tantra", messages=ask("hi there"), stream=True,
                                            stream_options={"include_usage": True})  # fmt: skip
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: hi there."
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens and len(chunks) > 5  # a piece per token


def test_chat_options_stop_max_tokens_and_a_system_message(client):
    messages = [{"role": "system", "content": "Be brief."}, *ask("one two three")]
    cut = client.chat.completions.create(model="fake-lm", messages=messages, max_tokens=5)
    assert cut.choices[0].message.content == "You s" and cut.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(model="fake-lm", messages=messages, stop=["two"])
    assert stopped.choices[0].message.content == "You said: one"


def test_images_are_read_as_facts_and_no_url_is_fetched(client, server):
    image = {"type": "image_url", "image_url": {"url": data_url((250, 5, 5))}}
    parts = [{"type": "text", "text": "What is it?"}, image]
    reply = client.chat.completions.create(model="fake-lm", messages=ask(parts)).choices[0].message.content
    assert reply == "You said: What is it?."  # the question alone; what the image shows is in the turn's note
    assert "<system>The picture image-1 shows: red" in PROMPTS_READ[-1]  # laid out as tantra chat lays it out
    assert PROMPTS_READ[-1].endswith("\n<user>What is it?\n<assistant>")
    local = {"type": "image_url", "image_url": {"url": (server[1] / "green.png").as_uri()}}
    client.chat.completions.create(model="fake-lm", messages=ask([local]))
    assert "<system>The picture green.png shows: green" in PROMPTS_READ[-1]
    for url, error in [("file:///etc/hostname", openai.PermissionDeniedError),
                       ("http://169.254.169.254/latest/meta-data", openai.BadRequestError),
                       ("data:image/png;base64,!!!", openai.BadRequestError),
                       ("data:image/eps;base64," + base64.b64encode(b"%!PS-Adobe-3.0 EPSF-3.0\n").decode(),
                        openai.BadRequestError)]:  # never Ghostscript  # fmt: skip
        with pytest.raises(error):
            client.chat.completions.create(model="fake-lm", messages=ask([{"type": "image_url",
                                                                           "image_url": {"url": url}}]))  # fmt: skip


@pytest.mark.parametrize(
    ("request_body", "status"),
    [({"model": "gpt-5", "messages": ask("x")}, 404), ({"model": "fake-lm", "messages": []}, 400),
     ({"model": "fake-lm", "messages": ask("x"), "n": 2}, 400),
     ({"model": "fake-lm", "messages": [{"role": "tool"}]}, 400),
     ({"model": "fake-lm", "messages": ask("x"), "temperature": "hot"}, 400), ({"messages": ask("x")}, 400),
     ({"model": "fake-lm", "messages": ask("x"), "response_format": "json_object"}, 400),
     ({"model": "fake-lm", "messages": ask("x"), "stream": True, "stream_options": "yes"}, 400),
     ({"model": "fake-lm", "messages": ask([{"type": "image_url", "image_url": {"url": "file:///a%00b"}}])}, 400),
     ({"model": "fake-lm", "messages": ask("x" * 5000)}, 400)],
)  # fmt: skip
def test_bad_chat_requests_get_openai_errors(client, request_body, status):
    with pytest.raises(openai.APIStatusError) as refused:
        client.post("/chat/completions", body=request_body, cast_to=object)
    assert refused.value.status_code == status and refused.value.body["message"]


def test_a_long_conversation_keeps_its_newest_turns_with_truncation_auto(client):
    """As ``tantra chat`` does (and ``tantra --server chat`` asks): the oldest exchanges give way to the context."""
    turns = []
    for n in range(5):
        turns += [{"role": "user", "content": f"turn {n} " + "x" * 990}, {"role": "assistant", "content": "ok"}]
    turns.append({"role": "user", "content": "the last one"})
    with pytest.raises(openai.BadRequestError, match="context holds 4096"):
        client.chat.completions.create(model="fake-lm", messages=turns, max_tokens=20)
    reply = client.chat.completions.create(model="fake-lm", messages=turns, max_tokens=20,
                                           extra_body={"truncation": "auto"})  # fmt: skip
    assert reply.choices[0].message.content == "You said: the last one."[:20]
    assert 3000 < reply.usage.prompt_tokens <= 4096 - 20


# ---- audio -----------------------------------------------------------------------------------------------------------


SPEECH = ("arctic_a0007.wav", (ROOT / "samples" / "arctic_a0007.wav").read_bytes())  # 4.0 s of a voice


def test_transcription_in_every_format(client):
    audio = SPEECH  # FakeWhisper hears the length of what the detector finds to be speech
    assert client.audio.transcriptions.create(model="whisper-1", file=audio).text == "4.0 seconds of sound"
    text = client.audio.transcriptions.create(model="fake", file=audio, response_format="text")
    assert text.strip() == "4.0 seconds of sound"
    srt = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="srt")
    assert "00:00:00,000 --> 00:00:04,000\n4.0 seconds of sound" in srt
    assert client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="vtt").startswith("WEBVTT")
    verbose = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json",
                                                 language="en", timestamp_granularities=["segment"])  # fmt: skip
    assert verbose.language == "en" and verbose.duration == pytest.approx(4.0)
    assert verbose.segments[0].end == pytest.approx(4.0)


def test_bad_audio_requests(client):
    with pytest.raises(openai.BadRequestError, match="not"):
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF but not audio at all"))
    with pytest.raises(openai.BadRequestError, match="English-only"):
        client.post("/audio/translations", body={"model": "whisper-1"}, files=[("file", SPEECH)], cast_to=object,
                    options={"headers": {"Content-Type": "multipart/form-data"}})
    with pytest.raises(openai.APIStatusError) as too_long:
        client.audio.transcriptions.create(model="whisper-1", file=("long.wav", wav_bytes(61, rate=8000)))
    assert too_long.value.status_code == 413 and "60 s" in too_long.value.message
    with pytest.raises(openai.APIStatusError) as too_big:
        client.audio.transcriptions.create(model="whisper-1", file=("big.wav", wav_bytes(100)))
    assert too_big.value.status_code == 413


@pytest.mark.parametrize("key", [KEY, "sk-wrong"])
def test_an_upload_refused_early_is_answered_not_reset(server, key):
    """Clients send the whole body before they read: a refusal must wait for it, or they see a reset and retry."""
    api = Endpoint(server[0], key, timeout=30, what="speech-to-text server", retries=0, relays_refusals=True)
    ten_times_the_limit = np.zeros(30 * 1024 * 1024 // 2, "<i2").tobytes()
    with pytest.raises(TantraError) as refused:
        api.post_form("/audio/transcriptions", {"model": "whisper-1"}, {"file": ("a.raw", ten_times_the_limit, "")})
    if key == KEY:
        assert isinstance(refused.value, BadInput)
        assert str(refused.value) == ("the request body (30.0 MB) is over this server's limit of 3 MB "
                                      "(tantra serve --max-body-mb)")  # fmt: skip
    else:
        assert isinstance(refused.value, ModelUnavailable) and "answered 401" in str(refused.value)


def test_a_chunked_upload_over_the_limit_is_answered_413(server):
    """No Content-Length to refuse it by: counted as it comes (the form parser alone would say 400)."""
    host, port = server[0].split("//")[1].split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.raw"\r\n\r\n'
    body = [part] + [bytes(1024 * 1024)] * 30
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "multipart/form-data; boundary=x"}
    connection.request("POST", "/v1/audio/transcriptions", iter(body), headers, encode_chunked=True)
    answer = connection.getresponse()
    assert answer.status == 413 and "over this server's limit of 3 MB" in answer.read().decode()


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "pcm"])
def test_speech_in_every_format(client, fmt):
    spoken = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there. Bye.",
                                        response_format=fmt, speed=1.0).content  # fmt: skip
    if fmt == "pcm":
        samples, rate = np.frombuffer(spoken, "<i2"), 24_000
    else:
        samples, rate = soundfile.read(io.BytesIO(spoken))
    # FakeVoice: 10 ms per character of each sentence
    assert len(samples) / rate == pytest.approx(0.01 * (len("Hello there.") + len("Bye.")), abs=0.03)


def test_speech_is_streamed_and_refuses_bad_input(client):
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="One. Two. Three.",
                                                            response_format="wav") as response:  # fmt: skip
        pieces = list(response.iter_bytes(64))
    assert b"".join(pieces)[:4] == b"RIFF"
    for bad in [{"input": ""}, {"input": "x" * 5000}, {"input": "Hi.", "response_format": "opus"},
                {"input": "Hi.", "speed": 9}, {"input": "Hi.", "voice": "no-such-voice"},
                {"input": "Hi.", "voice": "/etc/voice.onnx"}, {"input": "Hi.", "voice": "~"},
                {"input": "Hi.", "voice": "tts_models/en/ljspeech/vits"}]:  # never a path, never a download
        with pytest.raises(openai.BadRequestError):
            client.post("/audio/speech", body={"model": "tts-1", "voice": "alloy", **bad}, cast_to=object)


# ---- embeddings ------------------------------------------------------------------------------------------------------


def test_embeddings_as_floats_and_base64(client):
    texts = ["the cat sat", "a dog ran"]
    expected = FakeEmbedder().embed(texts)
    as_base64 = client.embeddings.create(model="fake-embedder", input=texts)  # the client asks for base64
    assert np.allclose([d.embedding for d in as_base64.data], expected, atol=1e-6)
    floats = client.embeddings.create(model="text-embedding-3-small", input="the cat sat", encoding_format="float")
    assert np.allclose(floats.data[0].embedding, expected[0], atol=1e-6) and floats.usage.prompt_tokens == 3


# ---- limits ----------------------------------------------------------------------------------------------------------


def slow_reply(message: str) -> str:
    time.sleep(0.002)  # scripted at the prompt; each token then costs a step of the decoding thread
    return "slow " * 40


def test_a_full_queue_answers_429_with_retry_after_and_a_client_that_leaves_frees_its_place():
    import http.client
    import json
    from urllib.parse import urlsplit

    pace = threading.Event()

    def paced(message: str) -> str:
        pace.wait(10)
        return "ok"

    app = create_app(fake_loader(reply=paced), ServeOptions(waiting=1))
    with serving(app) as url, ThreadPoolExecutor(4) as pool:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        first = pool.submit(client.chat.completions.create, model="fake-lm", messages=ask("a"))
        second = pool.submit(client.chat.completions.create, model="fake-lm", messages=ask("b"))
        lane = app.state.tantra.lanes["language"]
        deadline = time.monotonic() + 5
        while lane.admitted < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="fake-lm", messages=ask("c"))
        assert int(refused.value.response.headers["Retry-After"]) >= 1
        pace.set()
        assert first.result(10).choices[0].message.content == "ok" == second.result(10).choices[0].message.content

        # A client that leaves while waiting in line gives its place up at once.
        pace.clear()
        first = pool.submit(client.chat.completions.create, model="fake-lm", messages=ask("a"))
        while lane.admitted < 1:
            time.sleep(0.01)
        waiting = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port)
        waiting.request("POST", "/v1/chat/completions", json.dumps({"model": "fake-lm", "messages": ask("b")}),
                        {"Content-Type": "application/json"})  # fmt: skip
        while lane.admitted < 2:
            time.sleep(0.01)
        waiting.sock.shutdown(socket.SHUT_RDWR)
        waiting.close()
        deadline = time.monotonic() + 2
        while lane.admitted > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lane.admitted == 1
        pace.set()
        assert first.result(10).choices[0].message.content == "ok"

        # A streaming client that reads slowly holds no model once its reply is made; one that goes away after the
        # first piece frees its place within moments.
        app.state.tantra.loader._loaded.clear()  # the long reply, this time
        app.state.tantra.loader.backends["language:spikingbrain"] = lambda: fake_language_model(reply=slow_reply)
        body = json.dumps({"model": "fake-lm", "messages": ask("go"), "stream": True})
        raw = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port)
        raw.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        response = raw.getresponse()
        assert response.read1(100).startswith(b"data: ")
        deadline = time.monotonic() + 5
        while lane.admitted and time.monotonic() < deadline:  # 40 tokens made; the client has read one
            time.sleep(0.01)
        assert lane.admitted == 0
        raw.sock.shutdown(socket.SHUT_RDWR)
        raw.close()
        assert client.chat.completions.create(model="fake-lm", messages=ask("x")).choices[0].message.content


def test_load_200_requests_from_16_clients_none_lost_and_memory_flat(server):
    import psutil

    client = openai.OpenAI(base_url=server[0], api_key=KEY, max_retries=0, timeout=60)
    audio = SPEECH

    def one(n: int) -> str:
        kind = n % 4
        if kind == 0:
            return client.audio.transcriptions.create(model="whisper-1", file=audio).text
        if kind == 1:
            return str(len(client.embeddings.create(model="fake-embedder", input=f"text {n}").data))
        return client.chat.completions.create(model="fake-lm", messages=ask(f"n{n}"),
                                              stream=kind == 3).__class__.__name__  # fmt: skip

    def rounds(count: int) -> list[str]:
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(one, range(count)))

    rounds(64)  # warm: every route's first use, the allocator's pools
    before = psutil.Process().memory_info().rss
    started = time.monotonic()
    answers = rounds(200)
    took = time.monotonic() - started
    grew = (psutil.Process().memory_info().rss - before) / 2**20
    assert len(answers) == 200 and all(answers) and took < 60
    assert grew < 40, f"RSS grew {grew:.0f} MB over 200 requests"


# ---- the command --------------------------------------------------------------------------------------------------


def test_serve_warns_without_a_key_off_loopback_refuses_a_busy_port_and_stops_cleanly():
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import run_tantra

    command = [sys.executable, "-m", "tantra_cli", "serve", "--lazy", "--host", "0.0.0.0", "--port", "0"]
    served = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "TANTRA_SERVE_API_KEY": ""})  # fmt: skip
    try:
        said = [served.stderr.readline().decode() for _ in range(2)]
        assert "without an API key" in said[0] and "listening on http://0.0.0.0:" in said[1]
        port = said[1].split("0.0.0.0:")[1].split("/")[0]
        busy = run_tantra("serve", "--lazy", "--port", port, timeout=60)
        assert busy.returncode == 1 and b"in use" in busy.stderr and b"Traceback" not in busy.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health") as health:
            assert health.status == 200
        served.send_signal(signal.SIGTERM)
        assert served.wait(30) == 0
    finally:
        served.kill()


def test_a_client_with_server_reads_images_and_embeds_there_and_gives_way_in_one_line(server, tmp_path, monkeypatch):
    """``--server``: the server's classifier and embedder answer a client's describer and memory; once the server is
    gone, one line says so and the client's own models answer (``core.runtime.fallback.GiveWay``)."""
    import types

    from config.settings import Settings, with_server_roles
    from core.vision.describer import ImageDescriber

    monkeypatch.setattr("core.runtime.openai_http.time", types.SimpleNamespace(sleep=lambda _: None))  # no backoff

    url, _ = server
    said: list[str] = []
    here = lambda: FakeClassifier("here")  # noqa: E731
    local = {"vision:onnxruntime": here, "vision:torch": here, "memory:onnxruntime": FakeEmbedder}
    settings = with_server_roles(Settings(home=tmp_path, server=url, server_api_key=KEY))
    client = ModelLoader(MODEL_CONFIG, settings, warn=said.append, backends=local)
    describer = ImageDescriber(client, ocr=False)
    image = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(image, "PNG")
    image = image.getvalue()
    assert describer.facts(image)["engine"] == "fake" and said == []  # the server's FakeClassifier
    assert client.load_embedder().name == "fake-embedder" and client.load_embedder().api.label.startswith("Tantra")
    whisper = client.load_whisper()  # the server skips silent blocks itself: no detector is loaded here to do it
    assert whisper.name == "remote" and whisper.screens_silence
    gone = with_server_roles(Settings(home=tmp_path, server=nothing_listening_url(), server_api_key=KEY))
    client = ModelLoader(MODEL_CONFIG, gone, warn=said.append, backends=local)
    describer = ImageDescriber(client, ocr=False)
    assert describer.facts(image)["engine"] == "here" and describer.facts(image)["engine"] == "here"
    assert len(said) == 1 and "cannot be reached" in said[0] and said[0].endswith("images are read here instead")
    assert isinstance(client.load_embedder(), FakeEmbedder) and "trying" in said[-1]


def nothing_listening_url() -> str:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{free.getsockname()[1]}"
