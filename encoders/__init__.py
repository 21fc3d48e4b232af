"""The spec's encoder entry points: ``AudioEncoder`` and ``VisionEncoder``. The roles themselves live in ``core``."""
