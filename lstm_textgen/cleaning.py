"""Text cleaning: how raw text becomes training text, for both branches. A prompt must be cleaned
the same way as the text its model learnt from, so the switches that were on are recorded in the
vocabulary (`cleaning`), and sample and generate clean prompts with them. A Project Gutenberg
book also loses its header and license: what lies between its START and END markers is kept."""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

from lstm_textgen.errors import UserError

ASCII_PUNCTUATION = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                   "\u2014": "--", "\u2013": "-", "\u2026": "...", "\u00a0": " "})


def clean_text(text: str, lowercase: bool, ascii_punctuation: bool) -> str:
    """Book text after strip-boilerplate's switches."""
    if ascii_punctuation:
        text = text.translate(ASCII_PUNCTUATION)
    return text.lower() if lowercase else text


JOINING_PUNCTUATION = set("'\u2018\u2019.")


def clean_headline(raw: str, repair_encoding: bool, ascii_fold: bool, lowercase: bool,
                   strip_punctuation: bool) -> tuple[str, bool]:
    """A headline after each cleaning step that is switched on (tokenize-headlines stores the
    switches in the vocabulary, so sample cleans seed phrases the same way), and whether its
    encoding was repaired ("â€™" read back as "’")."""
    import ftfy  # the well-kept mojibake repairer; only the headlines stages load it
    text, repaired = raw, False
    if repair_encoding:
        text = ftfy.fix_encoding(raw)
        repaired = text != raw
    if strip_punctuation:  # every Unicode punctuation mark and symbol, curly quotes included;
        # apostrophes and periods join their word ("trump’s" → "trumps", "u.s." → "us")
        text = "".join("" if c in JOINING_PUNCTUATION else " " if unicodedata.category(c)[0] in "PS" else c
                       for c in text)
    if ascii_fold:  # é → e; what has no ASCII form is dropped
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    if lowercase:
        text = text.lower()
    return " ".join(text.split()), repaired


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
