"""How word-like and varied a generated text is: the sample stage's metrics."""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

from lstm_textgen.vocab import decode_chars

# The measures `dvc metrics show`, `dvc exp show` and the report list, under the branch's name:
# how word-like (char) or original (headlines) the text is, and how varied.
HEADLINE = {"char": ("known_word_share", "distinct_3"), "headlines": ("distinct_2", "copied_share")}


def headline(measures: dict, branch: str) -> dict:
    """The sample stage's metrics.json: HEADLINE's measures of `branch`, rounded, under its name."""
    return {branch: {key: round(measures[key], 4) for key in HEADLINE[branch]}}


def words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)*", text.lower())


def known_words(pieces: Iterable[np.ndarray], vocab: dict, wanted: set[str]) -> set[str]:
    """Which of the `wanted` words occur in a text of character ids, given as pieces (of any
    size): a piece is decoded up to its last whitespace (no word spans two), the rest carried
    into the next. Memory stays flat: neither the text nor its own words are ever held whole,
    only the wanted words found so far."""
    found, carry = set(), ""
    for piece in pieces:
        text = carry + decode_chars(piece, vocab)
        cut = max(text.rfind(space) for space in " \n\t\r") + 1
        found.update(wanted.intersection(words(text[:cut])))
        carry = text[cut:]
    return found | wanted.intersection(words(carry))


def ngrams(tokens: list, n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: list, n: int) -> float:
    """Share of n-grams that are distinct (1.0: nothing repeats)."""
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: list, n: int = 4) -> float:
    """Share of n-grams that already occurred earlier in the same text: loops score high."""
    grams = ngrams(tokens, n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def char_metrics(samples: list[str], training_words: set) -> dict:
    per_sample = [words(s) for s in samples]
    all_words = [w for ws in per_sample for w in ws]
    return {"known_word_share": sum(w in training_words for w in all_words) / len(all_words) if all_words else 0.0,
            "distinct_2": float(np.mean([distinct_n(ws, 2) for ws in per_sample])),
            "distinct_3": float(np.mean([distinct_n(ws, 3) for ws in per_sample])),
            "repetition_rate": float(np.mean([repetition_rate(ws) for ws in per_sample]))}


def headline_metrics(headlines: list[list[str]], generated: list[list[str]], training: set, unknown: str) -> dict:
    all_generated = [w for g in generated for w in g]
    return {"copied_share": sum(" ".join(h) in training for h in headlines) / len(headlines),
            "distinct_1": distinct_n(all_generated, 1), "distinct_2": distinct_n(all_generated, 2),
            "unknown_share": all_generated.count(unknown) / len(all_generated) if all_generated else 0.0}
