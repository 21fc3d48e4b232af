"""Token ids made into the text pieces a reader sees: whole UTF-8 characters, and nothing past a stop string.

Apart from the model that samples the ids (``core.language.language_model``): no torch here, so a fake model in the
tests streams through exactly what SpikingBrain's replies stream through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def text_pieces(tokens: Iterable[int], tokenizer, stop: tuple[str, ...], ids: list[int] | None = None) -> Iterator[str]:
    """Text pieces as they become final: whole UTF-8 characters, held back while they could start a stop string.

    ``tokenizer`` decodes (a ``core.language.language_model.ChatTokenizer``); the ids of ``tokens`` are appended to
    ``ids`` as they come, when the caller passes a list. Returning at a stop string closes ``tokens``.
    """
    ids = [] if ids is None else ids
    emitted = ""
    for token in tokens:
        ids.append(token)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue  # half of a multi-byte character: wait for the rest
        for end in stop:
            if end in text:
                yield text[len(emitted) : text.index(end)]
                return
        # Hold back a tail that may be the start of a stop string.
        hold = max((n for end in stop for n in range(1, len(end)) if text.endswith(end[:n])), default=0)
        ready = text[: len(text) - hold]
        if len(ready) > len(emitted):
            yield ready[len(emitted) :]
            emitted = ready
    final = tokenizer.decode(ids).rstrip("\ufffd")  # a character cut in half by max_tokens is dropped
    if len(final) > len(emitted) and not any(end in final for end in stop):
        yield final[len(emitted) :]
