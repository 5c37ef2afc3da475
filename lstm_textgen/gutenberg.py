"""A Project Gutenberg book without its header, license and credits: what lies between its START
and END markers, in both generations of markers; and reading any text with its newlines as LF."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lstm_textgen.errors import UserError


# Both generations of markers: "*** START OF THE PROJECT GUTENBERG EBOOK …" (2012 on) and
# "*** START OF THIS PROJECT GUTENBERG EBOOK …" (before), with their END twins.
START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.IGNORECASE | re.MULTILINE)


END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.IGNORECASE | re.MULTILINE)


# Inside the markers, old files still open with a credits paragraph and close with a trailer line.
CREDITS = re.compile(r"\A\s*(?:Produced by|This e-?text was (?:prepared|produced) by)\b.*?(?:\n\s*\n|\Z)",
                     re.IGNORECASE | re.DOTALL)


TRAILER = re.compile(r"^\s*End of (?:the )?Project Gutenberg\b.*\s*\Z", re.IGNORECASE | re.MULTILINE)


class NoMarkers(ValueError):
    pass


def normalize_newlines(text: str) -> str:
    """Drop a leading byte-order mark; CRLF and lone CR become LF."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg(text: str) -> str:
    """The book between the START and END markers, without credits, trailer and outer blank
    lines. Raises NoMarkers when either marker is missing."""
    return strip_normalized(normalize_newlines(text))


def strip_normalized(text: str) -> str:
    """strip_gutenberg of a text whose newlines are already normalized."""
    start = START.search(text)
    end = END.search(text, start.end()) if start else None
    if not (start and end):
        raise NoMarkers("no '*** START OF THE PROJECT GUTENBERG EBOOK' line" if not start
                        else "no '*** END OF THE PROJECT GUTENBERG EBOOK' line after the START line")
    body = text[start.end():end.start()]
    body = TRAILER.sub("", CREDITS.sub("", body, count=1), count=1)
    return body.strip()


def read_text(path: Path, fix: str) -> str:
    """The file at `path` as text, newlines as LF; `fix` says what to do when it is not UTF-8."""
    try:
        return normalize_newlines(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); {fix}")


def read_book(path: Path, strict: bool) -> tuple[str, int]:
    """The book in the file at `path`, and how many characters the whole file has (newlines as LF)."""
    raw = read_text(path, "download the book's 'Plain Text UTF-8' file")
    try:
        return strip_normalized(raw), len(raw)
    except NoMarkers as err:
        if strict:
            raise UserError(f"{path}: {err}, so the header and license cannot be told from the book. "
                            "Use a Project Gutenberg plain-text file, or set strip-boilerplate.strict: false "
                            "to keep the whole file")
        print(f"warning: {path}: {err}; keeping the whole file (strict: false)", file=sys.stderr)
        return raw.strip(), len(raw)
