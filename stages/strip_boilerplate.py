"""strip-boilerplate: keep only the books' text, without Project Gutenberg's header and license.

Reads data/raw (manifest.json and the files it lists); writes data/clean/corpus.txt (the books
and texts joined by a blank line), data/clean/cleaning.json (the switches that were on, which
encode-vocab passes on in the vocabulary) and metrics/corpus.json. A text of your own (an entry
with a `file` instead of an `id`) has no Gutenberg markers to look for: it is kept whole, with
its line endings made LF and a byte-order mark dropped.

Books are read one at a time and each is written to the corpus as soon as it is clean, so the
stage holds one book (a few times its size), never the corpus.
"""

import json
import re
import sys
from pathlib import Path

from errors import UserError, run
from files import atomic_file, write_json
from params import boolean, read_params
from text import clean_text

RAW_DIR = Path("data/raw")
CORPUS = Path("data/clean/corpus.txt")
CLEANING = Path("data/clean/cleaning.json")  # the switches, for cleaning prompts the same way
METRICS = Path("metrics/corpus.json")
PARAMS = {"lowercase": boolean, "ascii_punctuation": boolean, "strict": boolean}

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


def main() -> None:
    params = read_params("strip-boilerplate", PARAMS)
    try:
        manifest = json.loads((RAW_DIR / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {RAW_DIR / 'manifest.json'} ({err}); run `dvc repro download-gutenberg`")
    raw_chars = book_chars = book_lines = 0
    with atomic_file(CORPUS) as corpus:
        for i, entry in enumerate(manifest):
            if "id" in entry:
                path = RAW_DIR / f"pg{entry['id']}.txt"
                book, chars = read_book(path, params["strict"])
                if not book.strip():
                    raise UserError(f"{path}: nothing is left between the START and END markers; is it the "
                                    "right book?")
            else:  # a text of the user's: no markers; download-gutenberg refused an empty one
                path = RAW_DIR / entry["file"]
                raw = read_text(path, f"re-save {entry['text']} as UTF-8 (download-gutenberg.texts)")
                book, chars = raw.strip(), len(raw)
                if not book:
                    raise UserError(f"{path} ({entry['text']}, from download-gutenberg.texts) holds only "
                                    "whitespace: there is no text in it")
            book = clean_text(book, params["lowercase"], params["ascii_punctuation"])
            if i:
                corpus.write("\n\n")  # a blank line between books
            corpus.write(book)
            raw_chars, book_chars, book_lines = raw_chars + chars, book_chars + len(book), book_lines + book.count("\n")
        corpus.write("\n")
    joins = 2 * max(len(manifest) - 1, 0) + 1  # the newlines between books, and the last one
    write_json(CLEANING, {k: params[k] for k in ("lowercase", "ascii_punctuation")})
    write_json(METRICS, {"books": sum("id" in e for e in manifest), "texts": sum("id" not in e for e in manifest),
                         "characters": book_chars + joins, "lines": book_lines + joins,
                         "characters_removed": raw_chars - book_chars})


if __name__ == "__main__":
    run(main)
