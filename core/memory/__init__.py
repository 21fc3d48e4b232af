"""Memory: what lasts between conversations. ``tantra.db`` (the log and the episodic memory), the user's facts, the
journal a chat writes to, and the sentence embedder with its converter."""
