"""What every role shares, beneath them all: status lines, the one fallback walker, the one device and threads rule,
the one OpenAI-compatible HTTP client, ONNX sessions, files (sha256, ffmpeg), the model store and its conversions,
and reference implementations to measure against. Nothing here imports a role: ``conversions`` names each role's
converter by a string, imported when a pull needs it."""
