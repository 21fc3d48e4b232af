"""Model definitions (PyTorch)."""
