"""strip-boilerplate: keep only the books' text, without Project Gutenberg's header and license.

    python stages/strip_boilerplate.py      # run by `dvc repro strip-boilerplate`

Params: the `strip-boilerplate` section of params.yaml (lowercase, ascii_punctuation, strict).
Reads:  data/raw (manifest.json and the files it lists).
Writes: data/clean/corpus.txt (the books and texts, joined by a blank line), data/clean/cleaning.json
        (the switches that were on, for cleaning prompts alike) and metrics/corpus.json.

A text of your own has no markers to look for: it is kept whole. Books are read and written one
at a time, so the stage holds one book, never the corpus.
"""

import json
from pathlib import Path

from lstm_textgen.cleaning import clean_text
from lstm_textgen.errors import UserError, run_stage
from lstm_textgen.files import atomic_file, write_json
from lstm_textgen.gutenberg import read_book, read_text
from lstm_textgen.params import boolean, read_params

RAW_DIR = Path("data/raw")
CORPUS = Path("data/clean/corpus.txt")
CLEANING = Path("data/clean/cleaning.json")  # the switches, for cleaning prompts the same way
METRICS = Path("metrics/corpus.json")
PARAMS = {"lowercase": boolean, "ascii_punctuation": boolean, "strict": boolean}


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
                         "characters_removed": max(raw_chars - book_chars - joins, 0)})


if __name__ == "__main__":
    run_stage(main)
