"""A streamed reply cut into pieces a voice can say: the first clause as soon as it ends, then whole sentences.

The first piece is short on purpose (RealtimeTTS and GLaDOS do the same): the user hears the answer begin while
the model is still writing it. Later pieces are whole sentences, which a voice intones better than clauses.
"""

from __future__ import annotations

import re

FIRST_PIECE_CHARACTERS = 10  # a clause shorter than this ("Yes," "Well,") waits for more
LONGEST_FIRST_PIECE = 60  # without any punctuation by then, the first piece goes at a space: speech must start
# A clause or sentence ends at punctuation followed by a space or a line break ("3.5" and "e.g." do not end one:
# the character after them is not a space). Closing quotes and brackets stay with what they close.
_CLAUSE_END = re.compile(r"[,;:.!?…][\"')\]]*(?=\s)|\s[-–—](?=\s)|\n")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s)|\n")


class ReplyPieces:
    """Feed it the reply as it streams; it gives back each piece to speak once the piece is complete."""

    def __init__(self, first_piece_characters: int = FIRST_PIECE_CHARACTERS) -> None:
        self.first_piece_characters = first_piece_characters
        self._pending = ""
        self._first = True

    def feed(self, text: str) -> list[str]:
        self._pending += text
        pieces = []
        while True:
            end = self._end()
            if end is None:
                return pieces
            piece, self._pending = self._pending[:end].strip(), self._pending[end:]
            if piece:
                pieces.append(piece)
                self._first = False

    def _end(self) -> int | None:
        pattern = _CLAUSE_END if self._first else _SENTENCE_END
        for match in pattern.finditer(self._pending):
            if not self._first or len(self._pending[: match.end()].strip()) >= self.first_piece_characters:
                return match.end()
        if self._first and len(self._pending) > LONGEST_FIRST_PIECE:
            space = self._pending.rfind(" ", 0, LONGEST_FIRST_PIECE)
            return space if space > self.first_piece_characters else None
        return None

    def finish(self) -> list[str]:
        """What is left when the reply ends."""
        piece, self._pending = self._pending.strip(), ""
        return [piece] if piece else []


def heard_part(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text``'s words: what the user heard of a piece that was cut off while playing."""
    words = text.split()
    return " ".join(words[: round(len(words) * max(0.0, min(1.0, fraction)))])
