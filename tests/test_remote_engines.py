"""The language model, Whisper and the voice on an OpenAI-compatible server: a real HTTP server on 127.0.0.1 that
checks each request (path, key, body, the WAV it is sent) and fails, hangs, answers nonsense or is not there; each
failure says one line naming the server and the local chain answers.

Fast: the real clients and the real loader against the fake server, with fake local backends (tests/fakes.py).
Slow: the same through the real CLI, where the real local models answer when the server fails.
"""

from __future__ import annotations

import email.parser
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile

from config.errors import ModelUnavailable, TantraError
from config.model_config import MODEL_CONFIG
from config.settings import Settings
from core.hearing.transcriber import TranscribeOptions
from core.model_loader import ModelLoader
from tests.conftest import SAMPLE, run_tantra
from tests.fakes import FakeVoice, FakeWhisper, fake_language_model, named

KEY = "sk-test-5ecret"
PIECES = ["Hello", " from", " the", " server", "."]
SEGMENTS = [{"id": 0, "start": 0.0, "end": 1.5, "text": " Heard by the server.", "avg_logprob": -0.2,
             "no_speech_prob": 0.01},
            {"id": 1, "start": 1.5, "end": 3.0, "text": " Second segment.", "avg_logprob": -0.3,
             "no_speech_prob": 0.02}]  # fmt: skip
WORDS = [{"word": " Heard", "start": 0.1, "end": 0.4}, {"word": " Second", "start": 1.6, "end": 2.0}]
SPEECH_RATE = 24000  # the fake speech server's own rate, as OpenAI's


class FakeOpenAI(BaseHTTPRequestHandler):
    """``/v1/models``, ``/v1/chat/completions`` (SSE), ``/v1/audio/transcriptions|translations``, ``/v1/audio/speech``.

    mode: ok, error (503), flaky (the first request 503), hang (answers after 3 s), nonsense (200, not JSON, not a
    WAV); ``fail_after``: requests after that many answer 503 (a server that goes away mid-run)."""

    mode = "ok"
    fail_after: int | None = None
    seen: list[dict] = []
    text_only = False  # transcriptions answer {"text"} alone
    long_reply = 0  # chat: this many pieces, 20 ms apart, instead of PIECES
    chat_as = "events"  # chat: "events" (SSE), "whole" (one JSON answer, as a server that does not stream), "lines"
    hung_up = threading.Event()  # a long reply found the client gone

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self._answer_unless_gone(None)

    def do_POST(self):  # noqa: N802
        self._answer_unless_gone(self.rfile.read(int(self.headers["Content-Length"])))

    def _answer_unless_gone(self, raw: bytes | None):
        try:
            self._answer(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out (hang) or stopped reading: nothing to tell it

    def _answer(self, raw: bytes | None):
        cls = type(self)
        request = {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization")}
        cls.seen.append(request)
        if cls.mode == "hang":
            time.sleep(3)
        failing = cls.fail_after is not None and len(cls.seen) > cls.fail_after
        if cls.mode == "error" or failing or (cls.mode == "flaky" and len(cls.seen) == 1):
            return self._send(503, b'{"error": {"message": "overloaded"}}', "application/json", {"Retry-After": "0"})
        if cls.mode == "nonsense":
            return self._send(200, b"not json at all", "application/json")
        if self.path == "/v1/models":
            return self._json({"object": "list", "data": [{"id": "served-model", "object": "model"}]})
        if self.path == "/v1/chat/completions":
            request["body"] = body = json.loads(raw)
            return self._chat(body)
        if self.path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            request["form"] = form = _form(self.headers["Content-Type"], raw)
            return self._transcript(form)
        if self.path == "/v1/audio/speech":
            request["body"] = body = json.loads(raw)
            return self._speech(body)
        self._send(404, b'{"error": {"message": "no such route"}}', "application/json")

    def _chat(self, body: dict):
        if type(self).chat_as == "whole":
            return self._json({"choices": [{"index": 0, "message": {"role": "assistant", "content": "All at once."}}],
                               "usage": {"prompt_tokens": 9, "completion_tokens": 3}})  # fmt: skip
        if type(self).chat_as == "lines":
            return self._send(200, b"Hello\nfrom a server that is not OpenAI's\n", "text/plain")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        pieces = [f"w{i} " for i in range(type(self).long_reply)] or PIECES

        def event(data: dict):
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        try:
            event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            for piece in pieces:
                event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                if type(self).long_reply:
                    time.sleep(0.02)
            event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if body.get("stream_options", {}).get("include_usage"):
                event({"choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26}})
            self.wfile.write(b"data: [DONE]\n\n")
        except OSError:  # the client closed the connection: it stopped reading
            type(self).hung_up.set()

    def _transcript(self, form: dict):
        audio, rate = soundfile.read(io.BytesIO(form["file"]), dtype="float32")
        info = soundfile.info(io.BytesIO(form["file"]))
        assert info.format == "WAV" and info.subtype == "PCM_16" and rate == 16000, info
        if type(self).text_only:
            return self._json({"text": " Only text."})
        answer = {"task": "transcribe", "language": "english", "duration": len(audio) / rate, "text": "",
                  "segments": SEGMENTS}  # fmt: skip
        if "word" in form.get("timestamp_granularities[]", []):
            answer["words"] = WORDS
        self._json(answer)

    def _speech(self, body: dict):
        seconds = 0.01 * len(body["input"]) / body.get("speed", 1.0)
        tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SPEECH_RATE)) / SPEECH_RATE)
        buffer = io.BytesIO()
        soundfile.write(buffer, tone.astype(np.float32), SPEECH_RATE, format="WAV", subtype="PCM_16")
        self._send(200, buffer.getvalue(), "audio/wav")

    def _json(self, answer: dict):
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _send(self, status: int, data: bytes, kind: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet
        pass


def _form(content_type: str, raw: bytes) -> dict:
    """A multipart form's fields: text fields as strings (lists when repeated), the file as bytes."""
    message = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    form: dict = {}
    for part in message.get_payload():
        name, payload = part.get_param("name", header="content-disposition"), part.get_payload(decode=True)
        if part.get_filename():
            form[name] = payload
        elif name.endswith("[]"):
            form.setdefault(name, []).append(payload.decode())
        else:
            form[name] = payload.decode()
    return form


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    FakeOpenAI.mode, FakeOpenAI.fail_after, FakeOpenAI.seen = "ok", None, []
    FakeOpenAI.text_only, FakeOpenAI.long_reply, FakeOpenAI.chat_as = False, 0, "events"
    FakeOpenAI.hung_up = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)  # a quick shutdown
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def nothing_listening() -> str:
    """A URL on a port that was free a moment ago: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


LOCAL_LM = {f"language:{e}": named(fake_language_model, e) for e in MODEL_CONFIG.language.chain.entries}
LOCAL_WHISPER = {f"hearing:{e}": named(FakeWhisper, e) for e in MODEL_CONFIG.hearing.engines.entries}
LOCAL_VOICES = {f"voice:{e}": named(FakeVoice, e) for e in MODEL_CONFIG.voice.chain.entries}


def loader_for(tmp_path, **settings) -> tuple[ModelLoader, list[str]]:
    said: list[str] = []
    backends = {**LOCAL_LM, **LOCAL_WHISPER, **LOCAL_VOICES}
    return ModelLoader(MODEL_CONFIG, Settings(home=tmp_path, **settings), said.append, backends), said


def chat_session(loader: ModelLoader, said: list[str], **options):
    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions

    loaded = loader.load_spikingbrain()
    return ChatSession.of(loaded, SamplingOptions(**options), "Be brief.",
                          fallback=lambda: loader.load_spikingbrain(remote=False), warn=said.append)  # fmt: skip


# ---- the language model ----------------------------------------------------------------------------------------------


def test_a_chat_streams_from_the_server_with_the_whole_conversation(server, tmp_path):
    loader, said = loader_for(tmp_path, language_url=server, language_api_key=KEY)
    loaded = loader.load_spikingbrain()
    assert (loaded["name"], loaded["tokenizer"], loaded["device"]) == ("served-model", None, "remote")
    session = chat_session(loader, said, temperature=0.3, top_k=7, max_tokens=40, stop=("END",), seed=5)
    assert list(session.ask("hi")) == PIECES
    assert "".join(session.ask("and again")) == "Hello from the server."
    models, first, second = FakeOpenAI.seen
    assert (models["method"], models["path"], models["auth"]) == ("GET", "/v1/models", f"Bearer {KEY}")
    assert first["path"] == "/v1/chat/completions" and first["auth"] == f"Bearer {KEY}"
    body = second["body"]
    assert body["model"] == "served-model" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"], body["seed"]) == (
        0.3, 0.9, 40, ["END"], 5)  # fmt: skip
    assert "top_k" not in body and "repetition_penalty" not in body  # not OpenAI parameters
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello from the server."}, {"role": "user", "content": "and again"},
    ]  # fmt: skip
    assert (session.last.prompt_tokens, session.last.completion_tokens) == (21, 5)  # the server's usage
    assert session.spiking is False and said == []
    assert "served by the language model server at " + server in session.command("/model")
    assert "spikes" not in session.command("/stats") and "5 tokens" in session.command("/stats")
    session.warm_up()  # a server's model is warm: no request
    assert len(FakeOpenAI.seen) == 3
    assert KEY not in repr(loaded["model"]) + repr(loader.settings)


def test_a_reply_stopped_early_closes_the_connection(server, tmp_path):
    FakeOpenAI.long_reply = 300  # 6 s of pieces
    loader, said = loader_for(tmp_path, language_url=server)
    session = chat_session(loader, said)
    reply = session.ask("tell me everything")
    assert next(reply) == "w0"  # its space goes with the next piece (core.language.reply_filter)
    reply.close()  # Ctrl-C in the REPL
    assert FakeOpenAI.hung_up.wait(3)  # the server found the client gone long before its reply's end
    assert session.last.interrupted and session.conversation.messages[-1]["content"] == "w0"
    assert session.last.completion_tokens == 1  # no usage came: the pieces are counted


@pytest.mark.parametrize(("mode", "message"), [("error", "answered 503 (overloaded)"), ("nonsense", "not JSON")])
def test_a_server_that_fails_at_load_gives_way_to_the_local_chain(server, tmp_path, mode, message):
    FakeOpenAI.mode = mode
    loader, said = loader_for(tmp_path, language_url=server, language_api_key=KEY)
    assert loader.load_spikingbrain()["name"] == "spikingbrain"
    (line,) = said
    assert line.startswith(f"remote cannot be used (the language model server at {server} ") and message in line
    assert line.endswith("; trying spikingbrain-smollm2-135m (spiking)") and KEY not in line


def test_a_server_that_fails_mid_session_hands_the_turn_to_the_local_model(server, tmp_path):
    loader, said = loader_for(tmp_path, language_url=server, language_api_key=KEY)
    session = chat_session(loader, said)
    assert "".join(session.ask("first")) == "Hello from the server."
    FakeOpenAI.fail_after = len(FakeOpenAI.seen)
    assert "".join(session.ask("second")) == "You said: second."  # the local model, this turn ...
    assert "".join(session.ask("third")) == "You said: third."  # ... and the next
    (line,) = said
    assert line == (f"the language model server at {server} answered 503 (overloaded); "
                    "the local language model answers instead")  # fmt: skip
    assert len(FakeOpenAI.seen) == 2 + 3  # the failed turn was tried with its retries, the next not at all
    assert session.model_name == "spikingbrain" and session.spiking
    assert [m["content"] for m in session.conversation.messages] == [
        "first", "Hello from the server.", "second", "You said: second.", "third", "You said: third."]  # fmt: skip
    assert loader.load_spikingbrain(remote=False) is loader.load_spikingbrain(remote=False)  # loaded once


def test_a_server_that_does_not_stream_answers_whole_and_one_that_is_not_openai_is_said(server):
    from core.language.chat_model import TokenCounts
    from core.language.conversation import SamplingOptions
    from core.language.remote import RemoteChatModel
    from core.runtime.openai_http import Endpoint

    model, counts = RemoteChatModel(Endpoint(server, what="language model server"), "m"), TokenCounts()
    FakeOpenAI.chat_as = "whole"
    assert list(model.stream([{"role": "user", "content": "hi"}], SamplingOptions(), counts)) == ["All at once."]
    assert (counts.prompt_tokens, counts.completion_tokens, counts.reported) == (9, 3, True)
    FakeOpenAI.chat_as = "lines"  # without this check, an empty reply
    with pytest.raises(TantraError, match="answered something that is not an event stream"):
        list(model.stream([{"role": "user", "content": "hi"}], SamplingOptions()))


def test_a_hanging_stream_and_a_missing_server_are_said_in_one_line(server):
    from core.language.conversation import SamplingOptions
    from core.language.remote import RemoteChatModel
    from core.runtime.openai_http import Endpoint

    FakeOpenAI.mode = "hang"
    hanging = RemoteChatModel(Endpoint(server, KEY, timeout=0.3, what="language model server", retries=0), "m")
    start = time.monotonic()
    with pytest.raises(ModelUnavailable, match=r"cannot be reached \(no answer within 0.3 s\)"):
        list(hanging.stream([{"role": "user", "content": "hi"}], SamplingOptions()))
    assert time.monotonic() - start < 2
    gone = RemoteChatModel(Endpoint(nothing_listening(), retries=0, what="language model server"), "m")
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        list(gone.stream([{"role": "user", "content": "hi"}], SamplingOptions()))


# ---- speech to text --------------------------------------------------------------------------------------------------


def speech(seconds: float = 3.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * 16000)) / 16000)).astype(np.float32)


def test_whisper_on_the_server_gets_a_wav_and_gives_segments_and_words(server, tmp_path):
    loader, said = loader_for(tmp_path, hearing_url=server, hearing_api_key=KEY, hearing_model="whisper-large")
    engine = loader.load_whisper()
    assert (engine.name, engine.model_name, engine.multilingual) == ("remote", "whisper-large", True)
    assert {"en", "fr", "yue"} <= set(engine.languages)
    language, segments = engine.transcribe_block(speech(), TranscribeOptions(language="en", word_timestamps=True))
    segments = list(segments)
    assert language == "en" and [s.text for s in segments] == [" Heard by the server.", " Second segment."]
    assert (segments[1].start, segments[1].end, segments[1].no_speech_prob) == (1.5, 3.0, 0.02)
    assert [w.word for w in segments[0].words] == [" Heard"] and [w.word for w in segments[1].words] == [" Second"]
    _, request = FakeOpenAI.seen
    assert request["path"] == "/v1/audio/transcriptions" and request["auth"] == f"Bearer {KEY}"
    form = request["form"]
    assert (form["model"], form["response_format"], form["language"]) == ("whisper-large", "verbose_json", "en")
    assert form["timestamp_granularities[]"] == ["segment", "word"]
    sent, rate = soundfile.read(io.BytesIO(form["file"]), dtype="float32")
    assert rate == 16000 and len(sent) == 48000 and np.abs(sent - speech()).max() < 1e-3
    FakeOpenAI.text_only = True
    _, segments = engine.transcribe_block(speech(2.0), TranscribeOptions(task="translate"))
    assert [(s.start, s.end, s.text) for s in segments] == [(0.0, 2.0, " Only text.")]
    assert FakeOpenAI.seen[-1]["path"] == "/v1/audio/translations" and said == []
    assert KEY not in repr(engine)


def test_whisper_on_a_server_that_fails_gives_way_at_load_and_mid_run(server, tmp_path):
    FakeOpenAI.mode = "nonsense"
    loader, said = loader_for(tmp_path, hearing_url=server)
    assert loader.load_whisper().name == "faster-whisper"
    assert said == [f"remote cannot be used (the speech-to-text server at {server} answered something that is not "
                    "JSON); trying faster-whisper"]  # fmt: skip
    assert loader_for(tmp_path, hearing_url=server)[0].load_whisper(engine="openai-whisper").name == "openai-whisper"

    FakeOpenAI.mode, FakeOpenAI.seen = "ok", []
    loader, said = loader_for(tmp_path, hearing_url=server)
    engine = loader.load_whisper()
    FakeOpenAI.fail_after = 1  # the probe passes; every block after fails
    _, segments = engine.transcribe_block(speech(2.0), TranscribeOptions())
    assert [s.text for s in segments] == [" 2.0 seconds of sound"]  # the local engine took the block ...
    _, segments = engine.transcribe_block(speech(1.0), TranscribeOptions())
    assert [s.text for s in segments] == [" 1.0 seconds of sound"]  # ... and the rest, without asking again
    assert said == [f"the speech-to-text server at {server} answered 503 (overloaded); the local Whisper "
                    "transcribes from here on"]  # fmt: skip
    assert len(FakeOpenAI.seen) == 1 + 3 and engine.name == "faster-whisper"


# ---- speech out ------------------------------------------------------------------------------------------------------


def test_the_voice_on_the_server_says_each_sentence(server, tmp_path):
    from core.voice.speaker import Speaker

    loader, said = loader_for(tmp_path, voice_url=server, voice_api_key=KEY, voice_name="nova", voice_model="tts-hd")
    backend = loader.load_speaker()
    assert (backend.name, backend.voice, backend.sample_rate) == ("remote", "nova", SPEECH_RATE)
    chunks = list(Speaker(backend, rate=1.5).synthesize("Hello there. How are you?"))
    assert [c.text for c in chunks] == ["Hello there.", "How are you?"]
    assert all(c.sample_rate == SPEECH_RATE for c in chunks)
    assert len(chunks[0].samples) == int(0.01 * len("Hello there.") / 1.5 * SPEECH_RATE)
    probe, request, _ = FakeOpenAI.seen
    assert probe["body"]["input"] == "Ready." and request["auth"] == f"Bearer {KEY}"
    assert request["path"] == "/v1/audio/speech" and request["body"] == {
        "model": "tts-hd", "input": "Hello there.", "voice": "nova", "response_format": "wav", "speed": 1.5}
    assert loader.load_speaker(backend="piper").name == "piper"  # a pinned local voice goes without the server
    assert said == [] and KEY not in repr(backend)


def test_the_voice_on_a_server_that_fails_gives_way_at_load_and_mid_run(server, tmp_path):
    FakeOpenAI.mode = "error"
    loader, said = loader_for(tmp_path, voice_url=server)
    assert loader.load_speaker().name == "coqui"
    assert said == [f"remote cannot be used (the speech server at {server} answered 503 (overloaded)); trying coqui"]

    FakeOpenAI.mode, FakeOpenAI.seen = "ok", []
    loader, said = loader_for(tmp_path, voice_url=server)
    backend = loader.load_speaker()
    FakeOpenAI.fail_after = 1
    (samples,) = backend.synthesize("Hello there.", 1.0)
    assert backend.sample_rate == SPEECH_RATE and backend.name == "coqui"  # the local voice, at the server's rate
    assert abs(len(samples) - 0.01 * len("Hello there.") * SPEECH_RATE) <= 2  # resampled from FakeVoice's 16 kHz
    assert said == [f"the speech server at {server} answered 503 (overloaded); the local voice speaks from here on"]


@pytest.mark.parametrize("role", ["language", "hearing", "voice"])
def test_a_briefly_failing_server_is_retried(server, tmp_path, role):
    FakeOpenAI.mode = "flaky"
    loader, said = loader_for(tmp_path, **{f"{role}_url": server})
    load = {"language": lambda: loader.load_spikingbrain()["device"], "hearing": lambda: loader.load_whisper().name,
            "voice": lambda: loader.load_speaker().name}[role]  # fmt: skip
    assert load() == "remote" and said == [] and len(FakeOpenAI.seen) == 2


def test_nonsense_audio_is_one_line_too(server):
    from core.voice.remote import RemoteSpeechBackend

    FakeOpenAI.mode = "nonsense"
    with pytest.raises(TantraError, match="answered something that is not a WAV file"):
        RemoteSpeechBackend.connect(server, "tts-1", "alloy")


# ---- the real CLI ----------------------------------------------------------------------------------------------------


def test_the_cli_chats_transcribes_and_speaks_through_servers(server, tmp_path):
    env = {"TANTRA_LANGUAGE_URL": server, "TANTRA_LANGUAGE_API_KEY": KEY, "TANTRA_HEARING_URL": server,
           "TANTRA_HEARING_API_KEY": KEY, "TANTRA_VOICE_URL": server, "TANTRA_VOICE_API_KEY": KEY}  # fmt: skip
    result = run_tantra("chat", "hi", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "Hello from the server.\n" and KEY.encode() not in result.stdout + result.stderr
    result = run_tantra("transcribe", str(SAMPLE), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "Heard by the server.\nSecond segment.\n"
    assert KEY.encode() not in result.stdout + result.stderr
    out = tmp_path / "out.wav"
    result = run_tantra("speak", "Hello.", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(out, dtype="float32")
    assert rate == SPEECH_RATE and len(audio) >= int(0.01 * len("Hello.") * SPEECH_RATE)
    assert KEY.encode() not in result.stdout + result.stderr
    assert {r["path"] for r in FakeOpenAI.seen} == {"/v1/models", "/v1/chat/completions", "/v1/audio/transcriptions",
                                                    "/v1/audio/speech"}  # fmt: skip


def test_speak_with_server_uses_its_voice_and_falls_back_in_one_line(server, tmp_path):
    """``--server`` makes the running server the voice role's server, as it does for a chat: one way to reach it."""
    out = tmp_path / "out.wav"
    result = run_tantra("--server", server, "speak", "Hello.", "-o", str(out), env={"TANTRA_SERVER_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert soundfile.info(out).samplerate == SPEECH_RATE and "/v1/audio/speech" in {r["path"] for r in FakeOpenAI.seen}
    assert KEY.encode() not in result.stdout + result.stderr
    down = nothing_listening()
    local = ("--low-resource", "--server", down, "speak", "Hello.", "-o", str(out))  # espeak-ng: no weights to load
    result = run_tantra(*local, env={"TANTRA_SERVER_API_KEY": KEY})
    said = [line for line in result.stderr.decode().splitlines() if down in line]
    assert result.returncode == 0 and len(said) == 1 and "trying" in said[0], result.stderr


ROLES = {
    "chat": (("chat", "What is the capital of France?", "-t", "0", "-n", "8"), "LANGUAGE", "language model server"),
    "transcribe": (("transcribe", str(SAMPLE)), "HEARING", "speech-to-text server"),
    "speak": (("speak", "Hello.", "-o", "{out}"), "VOICE", "speech server"),
}


@pytest.mark.slow  # the real local models answer
@pytest.mark.parametrize("mode", ["error", "hang", "nonsense", "down"])
@pytest.mark.parametrize("role", list(ROLES))
def test_a_failing_server_is_one_line_and_the_local_chain_answers(server, tmp_path, role, mode):
    args, prefix, what = ROLES[role]
    url = nothing_listening() if mode == "down" else server
    FakeOpenAI.mode = mode
    env = {f"TANTRA_{prefix}_URL": url, f"TANTRA_{prefix}_API_KEY": KEY, f"TANTRA_{prefix}_TIMEOUT": "1"}
    out = tmp_path / "out.wav"
    start = time.monotonic()
    result = run_tantra(*(a.format(out=out) for a in args), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    said = [line for line in lines if what in line]
    assert len(said) == 1 and f"{what} at {url}" in said[0] and "trying" in said[0], lines
    assert b"Traceback" not in result.stderr and KEY.encode() not in result.stdout + result.stderr
    if role == "speak":
        assert soundfile.info(out).duration > 0.2
    else:
        assert result.stdout.strip() and b"server" not in result.stdout  # the local model's answer
    assert time.monotonic() - start < 120  # timeouts and retries are bounded: never a hang
