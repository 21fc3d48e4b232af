"""``tantra serve``: the models loaded once and kept warm behind the OpenAI API, for a team or for the CLI itself
(``tantra --server URL ...``)."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path

import typer

from config.errors import TantraError
from core.runtime.status import say
from tantra_cli.common import settings_of, user_errors

KEY_HELP = "Ask every client for this key as a bearer token (env TANTRA_SERVE_API_KEY); /health stays open."
ALLOW_HELP = "A directory whose images file:// URLs may name (repeatable); none: file URLs are refused."


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for every interface."),
    port: int = typer.Option(8765, "--port", "-p", min=0, max=65535, help="Port (0: any free one, printed)."),
    api_key: str = typer.Option(None, "--api-key", help=KEY_HELP, show_default=False),
    allow_dirs: list[Path] = typer.Option(None, "--allow-dir", help=ALLOW_HELP, file_okay=False),
    queue: int = typer.Option(32, "--queue", min=0, help="Requests that may wait per role; more get 429."),
    max_body_mb: float = typer.Option(25.0, "--max-body-mb", min=0.001, help="Largest request body (413 above)."),
    max_audio_minutes: float = typer.Option(60.0, "--max-audio-minutes", min=0.01, help="Longest audio (413)."),
    ocr: bool = typer.Option(None, "--ocr/--no-ocr", help="Read text in images (default on; off if --low-resource)."),
    preload: bool = typer.Option(True, "--preload/--lazy", help="Load every model before listening (default)."),
) -> None:
    """Serve chat, transcription, speech, embeddings and image descriptions over the OpenAI API."""
    settings = settings_of(ctx)
    with user_errors(settings):
        from dataclasses import replace

        from config.model_config import MODEL_CONFIG
        from core.model_loader import ModelLoader
        from tantra_server.app import ROLES, ServeOptions, create_app

        key = api_key if api_key is not None else settings.serve_api_key
        for directory in allow_dirs or []:
            if not directory.is_dir():
                raise TantraError(f"--allow-dir {directory}: no such directory")
        listener = _bind(host, port)  # before loading anything: a port in use is said at once
        if not key and not _is_loopback(host):
            say(f"warning: listening on {host} without an API key: anyone who can reach it can use it "
                "(--api-key or TANTRA_SERVE_API_KEY)")  # fmt: skip
        # The server runs its own models: remote engines (and a --server) are for clients, and a server that
        # used itself as its engine would wait on itself.
        local = replace(settings, language_url="", hearing_url="", voice_url="", server="")
        options = ServeOptions(key, tuple(allow_dirs or ()), int(max_body_mb * 1024 * 1024), max_audio_minutes * 60,
                               queue, ocr)  # fmt: skip
        app = create_app(ModelLoader(MODEL_CONFIG, local), options)
        if preload:
            for role in ROLES:
                try:
                    app.state.tantra.load(role)
                except TantraError as failure:
                    say(f"{role}: not available ({failure}); its routes answer 503")
        bound_host, bound_port = listener.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        say(f"listening on http://{shown}:{bound_port}/v1 (Ctrl-C stops after the requests in flight)")
        _run(app, listener, settings.verbose)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as failure:
        listener.close()
        reason = "it is in use" if failure.errno == 98 else failure.strerror
        raise TantraError(f"cannot listen on {host}:{port}: {reason}; choose another --port") from None
    listener.listen(128)
    listener.set_inheritable(True)
    return listener


def _run(app, listener: socket.socket, verbose: bool) -> None:
    """uvicorn until Ctrl-C or SIGTERM; then the requests in flight finish (up to 30 s) and the process ends."""
    import contextlib
    import os
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn's own re-raises the signal once drained, so a clean stop would end as "killed by SIGTERM".
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {stop: signal.signal(stop, self.handle_exit) for stop in stops}
            try:
                yield
            finally:
                for stop, handler in previous.items():
                    signal.signal(stop, handler)

    config = uvicorn.Config(app, log_level="info" if verbose else "warning", access_log=verbose, lifespan="off",
                            timeout_graceful_shutdown=30, server_header=False)  # fmt: skip
    Server(config).run(sockets=[listener])
    say("stopped")
    sys.stdout.flush()
    sys.stderr.flush()
    # As `tantra chat` ends: the models' native thread pools sometimes abort in the interpreter's teardown.
    os._exit(0)
