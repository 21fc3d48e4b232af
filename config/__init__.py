"""Model configuration and user settings."""
