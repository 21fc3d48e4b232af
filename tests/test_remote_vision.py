"""The Long-VITA client against a real HTTP server on 127.0.0.1 that checks each request: the protocol's shape,
the image, the key; and servers that fail, hang or answer nonsense."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from tests.conftest import run_tantra

KEY = "sk-test-5ecret"


class FakeVLM(BaseHTTPRequestHandler):
    mode = "ok"  # ok, error, flaky, hang, nonsense
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        mode = type(self).mode
        if mode == "hang":
            time.sleep(5)
        if mode == "error" or (mode == "flaky" and len(type(self).seen) == 1):
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"overloaded")
            return
        parts = body["messages"][0]["content"]
        image = next(p for p in parts if p["type"] == "image_url")["image_url"]["url"]
        size = Image.open(io.BytesIO(base64.b64decode(image.split(",", 1)[1]))).size
        question = next(p for p in parts if p["type"] == "text")["text"]
        answer = "not json at all" if mode == "nonsense" else json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": f"A {size[0]}x{size[1]} image. Q: {question}"}}]}
        )  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args):  # quiet
        pass

pytestmark = pytest.mark.slow  # every test here runs the real models


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLM)
    FakeVLM.mode, FakeVLM.seen = "ok", []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (200, 20, 20)).save(path)
    return path


def test_the_request_has_the_protocols_shape_and_the_answer_is_printed(server, image):
    env = {"TANTRA_VISION_URL": server, "TANTRA_VISION_API_KEY": KEY, "TANTRA_VISION_MODEL": "long-vita-16k"}
    result = run_tantra("-v", "describe", str(image), "--no-ocr", "--prompt", "What colour?", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "A 64x48 image. Q: What colour?"
    (request,) = FakeVLM.seen
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "long-vita-16k" and request["body"]["messages"][0]["role"] == "user"
    assert KEY.encode() not in result.stderr + result.stdout  # the key is never shown


def test_a_briefly_failing_server_is_retried(server, image):
    FakeVLM.mode = "flaky"
    result = run_tantra("describe", str(image), "--no-ocr", env={"TANTRA_VISION_URL": server})
    assert result.returncode == 0 and result.stdout.startswith(b"A 64x48 image.") and len(FakeVLM.seen) == 2


@pytest.mark.parametrize(
    ("mode", "message"),
    [("error", b"answered 503"), ("hang", b"no answer within 1 s"), ("nonsense", b"not JSON")],
)
def test_a_broken_server_is_said_and_the_local_description_stands(server, image, mode, message):
    FakeVLM.mode = mode
    env = {"TANTRA_VISION_URL": server, "TANTRA_VISION_TIMEOUT": "1", "TANTRA_VISION_API_KEY": KEY}
    start = time.monotonic()
    result = run_tantra("describe", str(image), "--no-ocr", env=env)
    assert result.returncode == 0 and message in result.stderr, result.stderr
    assert b"local classifier" in result.stderr and b"Traceback" not in result.stderr
    assert result.stdout.strip() and KEY.encode() not in result.stderr
    assert time.monotonic() - start < 60  # timeouts and retries are bounded: never a hang


def test_no_server_listening(image):
    result = run_tantra("describe", str(image), "--no-ocr", env={"TANTRA_VISION_URL": "http://127.0.0.1:9/v1"})
    assert result.returncode == 0 and b"cannot be reached" in result.stderr
