"""Hearing: speech to text. Audio files in, the Whisper engines (local and on a server), their converter, the
transcript and its formats, and Whisper's encoder as an audio embedding."""
