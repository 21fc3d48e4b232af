"""Transcript writers, one per output format, the same formats and layout as the ``whisper`` CLI writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TextIO

from core.hearing.transcriber import Segment, Transcript

FORMATS = ("txt", "srt", "vtt", "tsv", "json")


def timestamp(seconds: float, decimal: str = ".", always_hours: bool = False) -> str:
    milliseconds = max(0, round(seconds * 1000))
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    seconds, milliseconds = divmod(milliseconds, 1_000)
    prefix = f"{hours:02d}:" if always_hours or hours else ""
    return f"{prefix}{minutes:02d}:{seconds:02d}{decimal}{milliseconds:03d}"


def _cue_text(segment: Segment) -> str:
    # "-->" inside a cue would end the cue line for srt and vtt readers.
    return segment.text.strip().replace("-->", "->")


def write_txt(segments: list[Segment], transcript: Transcript, out: TextIO) -> None:
    for segment in segments:
        print(segment.text.strip(), file=out)


def write_srt(segments: list[Segment], transcript: Transcript, out: TextIO) -> None:
    for number, segment in enumerate(segments, start=1):
        start = timestamp(segment.start, ",", always_hours=True)
        end = timestamp(segment.end, ",", always_hours=True)
        print(f"{number}\n{start} --> {end}\n{_cue_text(segment)}\n", file=out)


def write_vtt(segments: list[Segment], transcript: Transcript, out: TextIO) -> None:
    print("WEBVTT\n", file=out)
    for segment in segments:
        print(f"{timestamp(segment.start)} --> {timestamp(segment.end)}\n{_cue_text(segment)}\n", file=out)


def write_tsv(segments: list[Segment], transcript: Transcript, out: TextIO) -> None:
    # Integer milliseconds, as the whisper CLI writes them, so no locale can misread a decimal point.
    print("start\tend\ttext", file=out)
    for segment in segments:
        text = segment.text.strip().replace("\t", " ")
        print(f"{round(1000 * segment.start)}\t{round(1000 * segment.end)}\t{text}", file=out)


def write_json(segments: list[Segment], transcript: Transcript, out: TextIO) -> None:
    def segment_dict(segment: Segment) -> dict:
        data = asdict(segment)
        if data["words"] is None:
            del data["words"]
        return data

    document = {
        "text": "".join(segment.text for segment in segments).strip(),
        "language": transcript.language,
        "duration": transcript.duration,
        "segments": [segment_dict(segment) for segment in segments],
    }
    json.dump(document, out, ensure_ascii=False, indent=2)
    out.write("\n")


WRITERS: dict[str, Callable[[list[Segment], Transcript, TextIO], None]] = {
    "txt": write_txt,
    "srt": write_srt,
    "vtt": write_vtt,
    "tsv": write_tsv,
    "json": write_json,
}
