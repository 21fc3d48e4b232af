"""Encoders: audio in (files, microphone), images, speech out. Each module imports its heavy libraries itself."""
