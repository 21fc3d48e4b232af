"""``tantra bench serve``: a real ``tantra serve`` under load from 1, 4 and 16 concurrent clients on loopback.

Per endpoint and concurrency: requests per second, p50/p95 latency; chat tokens per second summed over the
clients (streamed replies); the server's memory before and after; and one transcription asked of the warm server
by the CLI (``tantra --server``) against the same transcription by the cold CLI, side by side.
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from config.settings import Settings
from tantra_benchmarks.common import ROOT, SPEECH, TANTRA, median_seconds, tantra_env

CONCURRENCY = (1, 4, 16)
REQUESTS = {1: 6, 4: 12, 16: 32}  # per endpoint: enough for a p95 at 16, bounded in time on two cores
CHAT_TOKENS = 32


def bench_serve(settings: Settings, cli_repeats: int = 3) -> dict:
    from core.runtime.openai_http import Endpoint

    server = _start(settings)
    try:
        api = Endpoint(server["url"], timeout=600, what="bench server")
        requests = _requests(api)
        for run in requests.values():
            run()  # each route's first use (and the models' first run) is not what is measured
        rss_before = _rss_mb(server["pid"])
        endpoints = {}
        for name, run in requests.items():
            endpoints[name] = {f"c{c}": _load(run, c, REQUESTS[c]) for c in CONCURRENCY}
        rss_after = _rss_mb(server["pid"])
        for run in requests.values():  # the same load again: memory that still grows would be a leak, not pools
            _load(run, CONCURRENCY[-1], REQUESTS[CONCURRENCY[-1]])
        rss_again = _rss_mb(server["pid"])
        cli = _cli_side_by_side(settings, server["url"].removesuffix("/v1"), cli_repeats)
    finally:
        server["process"].terminate()
        server["process"].wait(60)
    return {
        "endpoints": endpoints,
        "server_rss_mb": {"after_warm_up": rss_before, "after_load": rss_after, "after_the_same_load_again": rss_again},
        "transcribe_cli": cli,
        "notes": "server and clients share this machine's cores; each role serves one request at a time "
                 "and queues the rest, so throughput at 4 and 16 shows queueing, not parallel models",
    }  # fmt: skip


def _start(settings: Settings) -> dict:
    process = subprocess.Popen([*TANTRA, "serve", "--port", "0"], cwd=ROOT, env=tantra_env(settings),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    for line in process.stderr:
        text = line.decode(errors="replace")
        if "listening on " in text:
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()  # keep it drained
            return {"process": process, "pid": process.pid, "url": text.split("listening on ", 1)[1].split()[0]}
    raise RuntimeError("tantra serve did not start")


def _requests(api) -> dict:
    """One call per endpoint; each returns the completion tokens it streamed (chat) or 0."""
    audio = SPEECH.read_bytes()
    image = _image()

    def chat() -> int:
        body = {"model": "tantra", "max_tokens": CHAT_TOKENS, "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "Tell me about the sea."}]}  # fmt: skip
        usage = [e["usage"] for e in api.events("/chat/completions", body) if e.get("usage")]
        return usage[-1]["completion_tokens"]

    def transcription() -> int:
        files = {"file": ("a.wav", audio, "audio/wav")}
        with api.post_form("/audio/transcriptions", {"model": "whisper-1"}, files) as r:
            assert json.loads(r.read())["text"]
        return 0

    def speech() -> int:
        body = json.dumps({"model": "tts-1", "input": "Hello there. How can I help?", "response_format": "wav"})
        with api.open("POST", "/audio/speech", body.encode(), "application/json") as r:
            assert len(r.read()) > 1000
        return 0

    def embeddings() -> int:
        assert api.post_json("/embeddings", {"model": "all-minilm-l6-v2", "input": "The cat sat on the mat."})["data"]
        return 0

    def describe() -> int:
        with api.post_form("/tantra/describe", {"top": "3"}, {"file": ("photo.png", image, "image/png")}) as r:
            assert json.loads(r.read())["labels"]
        return 0

    return {"chat_completions_stream": chat, "audio_transcriptions": transcription, "audio_speech": speech,
            "embeddings": embeddings, "tantra_describe": describe}  # fmt: skip


def _load(run, concurrency: int, count: int) -> dict:
    latencies: list[float] = []
    tokens: list[int] = []

    def one(_: int) -> None:
        start = time.perf_counter()
        tokens.append(run())
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - start
    latencies.sort()
    result = {
        "requests": count, "requests_per_second": round(count / wall, 2),
        "p50_seconds": round(statistics.median(latencies), 3),
        "p95_seconds": round(latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))], 3),
    }  # fmt: skip
    if any(tokens):
        result["tokens_per_second_summed"] = round(sum(tokens) / wall, 1)
    return result


def _cli_side_by_side(settings: Settings, root: str, repeats: int) -> dict:
    env = tantra_env(settings)

    def cli(*args: str) -> None:
        done = subprocess.run([*TANTRA, *args, "transcribe", str(SPEECH)], env=env, capture_output=True)
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"tantra {' '.join(args)} transcribe failed: {done.stderr.decode()[-300:]}")

    warm = median_seconds(lambda: cli("--server", root), repeats)
    cold = median_seconds(cli, repeats)
    return {"clip": SPEECH.name, "warm_server_seconds": round(warm, 3), "cold_cli_seconds": round(cold, 3),
            "cold_over_warm": round(cold / warm, 1)}  # fmt: skip


def _rss_mb(pid: int) -> int:
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20)
    except psutil.Error:
        return -1


def _image() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()
