"""Import-only stand-in for torchcodec, for Coqui TTS's inference (see ../README.md)."""
