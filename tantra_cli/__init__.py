"""Tantra's command line. Importing it must stay light: no torch, transformers, whisper or onnxruntime."""

__version__ = "0.1.0"
