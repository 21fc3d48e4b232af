"""One way to open an ONNX model on onnxruntime, for every backend that runs one (the Piper voice, the classifier)."""

from __future__ import annotations

from pathlib import Path

from config.errors import ModelUnavailable


def open_session(path: Path, threads: int, providers: list[str], what: str = "ONNX model", **options):
    """An ``onnxruntime.InferenceSession`` of ``path`` on ``providers`` (best first, as ``core.runtime.placement`` gives
    them) with its own pool of ``threads``; ``options`` set other ``SessionOptions`` fields. A file it cannot read
    is a one-line error naming ``what`` it should have been."""
    import onnxruntime

    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = threads
    for name, value in options.items():
        setattr(session_options, name, value)
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=session_options, providers=providers)
    except (OSError, onnxruntime.capi.onnxruntime_pybind11_state.Fail) as error:
        raise ModelUnavailable(f"{path} is not a usable {what} ({error})") from None
