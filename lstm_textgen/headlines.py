"""Headlines as word ids: reading the CSV (with pandas), the word vocabulary, the held-out split,
and one right-padded row per headline (its words, the end token, padding up to max_length + 1).

Inputs are row[:-1] and targets row[1:], so position t predicts word t+1 from words 1..t: the row
holds every prefix n-gram of the headline (the tutorial's training pairs), computed in one pass
instead of one padded copy per prefix. Padding on the right keeps padding out of every real
position's state and keeps the LSTM cuDNN-eligible; padded targets weigh 0."""

from __future__ import annotations

import random
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from lstm_textgen.download import fetch, is_url, mirror_hint, refusal, with_mirror
from lstm_textgen.errors import UserError
from lstm_textgen.vocab import encode_words, id_dtype


PAD, UNKNOWN, END = "<pad>", "<unk>", "<end>"


def build_word_vocab(headlines: list[list[str]], vocab_size: int, cleaning: dict) -> dict:
    """Special tokens, then the most frequent words (ties alphabetical) up to vocab_size in all;
    with the cleaning that turned raw headlines into these words."""
    counts = Counter(w for words in headlines for w in words)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    specials = [PAD, UNKNOWN, END]
    return {"unit": "word", "tokens": specials + ranked[:max(vocab_size - len(specials), 0)],
            "pad": PAD, "unknown": UNKNOWN, "end": END, "cleaning": cleaning}


def coverage(headlines: list[list[str]], known: set) -> float:
    """Share of the words that the vocabulary knows."""
    words = [w for h in headlines for w in h]
    return round(sum(w in known for w in words) / len(words), 4) if words else 0.0


def headline_rows(headlines: list[list[str]], vocab: dict, max_length: int) -> tuple[np.ndarray, int]:
    """One right-padded row per headline (words, end token, padding); and how many were cut
    to max_length words (a cut headline gets no end token: it did not end there)."""
    index = {w: i for i, w in enumerate(vocab["tokens"])}
    rows = np.full((len(headlines), max_length + 1), index[vocab["pad"]], dtype=id_dtype(len(vocab["tokens"])))
    cut = 0
    for row, words in zip(rows, headlines):
        ids = encode_words(words[:max_length], vocab)
        if len(words) > max_length:
            cut += 1
        else:
            ids.append(index[vocab["end"]])
        row[:len(ids)] = ids
    return rows, cut


def split_headlines(headlines: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Distinct headlines, shuffled by `seed`, the last val_fraction held out: a headline that
    occurs twice is on one side only."""
    distinct = sorted(set(headlines))
    random.Random(seed).shuffle(distinct)
    n_val = max(1, round(len(distinct) * val_fraction))
    return distinct[:-n_val], distinct[-n_val:]


SEPARATORS = {";": "semicolons (';')", "\t": "tabs", "|": "vertical bars ('|')"}


def not_comma_separated(path: Path, name: str) -> UserError | None:
    """The error for a CSV whose header row is separated by ';', tab or '|' instead of commas."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        header = f.readline().lstrip("\ufeff").rstrip("\r\n")
    found = [sep for sep in SEPARATORS if sep in header]
    if "," in header or not found:
        return None
    return UserError(f"{name} separates its columns with {SEPARATORS[max(found, key=header.count)]}, not commas "
                     f"(header row: {header[:80]!r}); re-save it as a comma-separated CSV")


def parser_problem(err: Exception) -> str:
    """pandas' ParserError, in a few words ("line 7 has 3 fields where the header has 1")."""
    text = str(err).replace("Error tokenizing data. C error: ", "").strip()
    if m := re.search(r"Expected (\d+) fields? in line (\d+), saw (\d+)", text):
        expected, line, saw = m.groups()
        return (f"line {line} has {saw} fields where the header has {expected}; put values that hold commas "
                'in double quotes ("...")')
    if m := re.search(r"EOF inside string starting at row (\d+)", text):
        return f'a double quote opened near row {m.group(1)} is never closed; close it or double it ("")'
    return (text.splitlines() or ["unknown parser error"])[0][:150]


def read_headlines(path: Path, column: str, name: str) -> list[str]:
    """The column's values, as strings; errors name the file as the user gave it (`name`)."""
    import pandas as pd
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{name} is not UTF-8 text ({err.reason} at byte {err.start}); "
                        "re-save the CSV as UTF-8")
    except pd.errors.EmptyDataError:
        raise UserError(f"{name} is empty: expected a CSV with a header row and a '{column}' column")
    except pd.errors.ParserError as err:
        raise not_comma_separated(path, name) or UserError(
            f"{name} is not a readable CSV: {parser_problem(err)}") from None
    if column not in frame.columns:
        raise not_comma_separated(path, name) or UserError(
            f"{name} has no '{column}' column (columns: {', '.join(map(str, frame.columns))}); "
            "set tokenize-headlines.column")
    return frame[column].tolist()


def get_source(source: str, dest: Path) -> None:
    """Copy or download the CSV to dest, with the same retries and mirror as the books; an
    empty file or an HTML page is refused, whichever way it came."""
    if is_url(source):
        name = source.rsplit("/", 1)[-1] or "headlines.csv"
        fetch(with_mirror([source], name), dest, "the headlines CSV", hint=mirror_hint(name))
    elif Path(source).is_file():
        if reason := refusal(source):
            raise UserError(f"{source} is {reason}: expected a CSV with a header row; check "
                            "tokenize-headlines.source")
        shutil.copyfile(source, dest)
    else:
        raise UserError(f"params.yaml: tokenize-headlines.source = {source!r}: no such file; "
                        "give a CSV path (relative to the project root) or an http(s) URL")
