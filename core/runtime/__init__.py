"""What every role shares, beneath them all: status lines, the one fallback walker, the one device
and threads rule, the one OpenAI-compatible HTTP client, ONNX sessions, and reference implementations to measure
against. Nothing here knows a role."""
