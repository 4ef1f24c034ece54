"""Turning what a caller hands a feed parser into lines of text.

Owns the one rule for feed encodings: UTF-8, with or without a byte order mark.
Promises: lines come out lazily (a large feed is never held as one string)
with their line endings kept, split only at ``\\r\\n``, ``\\n`` or ``\\r`` as the
`csv` module expects; the BOM is dropped; bytes that are not UTF-8 raise a
`FeedError` naming the line and the byte (and what Windows-1252 would read,
the usual culprit), never a `UnicodeDecodeError`; UTF-16 and UTF-32 files
(a byte order mark of theirs, or NUL bytes on the first line) are named as such.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from typing import IO, TypeAlias, cast

from swarm.feed_results import FeedError

FeedSource: TypeAlias = str | bytes | IO[str] | IO[bytes]
"""Feed text, feed bytes, or an open text or binary stream."""

_BOM = "\ufeff"
_BARE_CR = re.compile(r"(?<=\r)(?!\n)")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF16_REASON = (
    'the file is UTF-16 or UTF-32 text (a spreadsheet\'s "Unicode text"), not UTF-8; '
    'save it as "CSV UTF-8"'
)


def iter_text_lines(source: FeedSource) -> Iterator[str]:
    """The lines of `source`, decoded, BOM dropped, endings kept."""
    lines = _raw_lines(source)
    first = next(lines, None)
    if first is None:
        return
    yield first.removeprefix(_BOM)
    yield from lines


def _raw_lines(source: FeedSource) -> Iterator[str]:
    if isinstance(source, str):
        return iter(io.StringIO(source, newline=""))
    if isinstance(source, bytes):
        return _decode_lines(io.BytesIO(source))
    if isinstance(source.read(0), bytes):
        return _decode_lines(cast(IO[bytes], source))
    return _split_bare_cr(_checked_text_lines(cast(IO[str], source)))


def _decode_lines(stream: Iterable[bytes]) -> Iterator[str]:
    """Decode line by line so an encoding error names its line exactly."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and (raw.startswith(_UTF16_BOMS) or b"\x00" in raw):
            raise FeedError(_UTF16_REASON, row=1)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FeedError(_not_utf8_reason(raw, e.start), row=number) from e
        yield from _split_bare_cr([text])


def _not_utf8_reason(raw: bytes, start: int) -> str:
    """Name the bad byte, and what a Windows-1252 (or Latin-1) file would mean by it."""
    byte = raw[start : start + 1]
    try:
        guess = f" (Windows-1252 reads it as {byte.decode('cp1252')!r})"
    except UnicodeDecodeError:
        guess = ""
    return (
        f"not UTF-8 text: byte 0x{byte[0]:02x} at byte {start + 1} of the line{guess}; "
        "save the file as UTF-8"
    )


def _checked_text_lines(stream: IO[str]) -> Iterator[str]:
    """A caller's text stream, its decoding errors turned into `FeedError`."""
    number = 0
    lines = iter(stream)
    while True:
        try:
            line = next(lines, None)
        except UnicodeDecodeError as e:
            # The stream decodes ahead in chunks: the bad byte is at or after this row.
            reason = f"not UTF-8 text ({e.reason}); pass the feed as bytes for the exact line"
            raise FeedError(reason, row=number + 1) from e
        if line is None:
            return
        number += 1
        yield line


def _split_bare_cr(chunks: Iterable[str]) -> Iterator[str]:
    """Split at a lone ``\\r`` too (old Mac line ends), keeping it on its line."""
    for chunk in chunks:
        if "\r" not in chunk:
            yield chunk
            continue
        yield from (part for part in _BARE_CR.split(chunk) if part)
