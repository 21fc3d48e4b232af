"""Where the spec's Getting Started finds the loader: ``from utils.model_loader import ModelLoader``.

The loader itself is ``core.model_loader``; this module only names it here, so that example runs verbatim.
"""

from core.model_loader import ModelLoader

__all__ = ["ModelLoader"]
