"""The spec's ``utils`` entry point: ``from utils.model_loader import ModelLoader`` (the loader is
``core.model_loader``)."""
