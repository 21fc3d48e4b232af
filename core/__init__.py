"""Tantra's core: models, the model store and loading, transcription, conversation."""
