"""One way to open an ONNX model on onnxruntime, for every backend that runs one (the Piper voice, the classifier)."""

from __future__ import annotations

from pathlib import Path

from core.errors import ModelUnavailable


def open_session(path: Path, options, device: str = "cpu", what: str = "ONNX model"):
    """An ``onnxruntime.InferenceSession`` of ``path`` with ``options``: on CUDA when ``device`` allows it (auto or
    cuda) and this onnxruntime build has it, else on the CPU. A file it cannot read is a one-line error naming
    ``what`` it should have been."""
    import onnxruntime

    providers = ["CPUExecutionProvider"]
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except (OSError, onnxruntime.capi.onnxruntime_pybind11_state.Fail) as error:
        raise ModelUnavailable(f"{path} is not a usable {what} ({error})") from None
