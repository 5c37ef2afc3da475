"""Vocabularies and text: a vocabulary is a sorted list of tokens (characters or words); a
token's id is its index. When rare tokens were folded away, `unknown` names the token that
stands for them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from errors import UserError

UNKNOWN_CHAR = "\ufffd"


def code_points(text: str) -> np.ndarray:
    """Each character's code point, without a Python object per character (a lone surrogate, as
    surrogateescape leaves in a command line, is its own code point)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def count_chars(pieces: Iterable[str]) -> Counter:
    """How often each character occurs in the text given in pieces."""
    counts = Counter()
    for piece in pieces:
        points, times = np.unique(code_points(piece), return_counts=True)
        counts.update(dict(zip(map(chr, points.tolist()), times.tolist())))
    return counts


def build_char_vocab(text: str, min_count: int = 1) -> dict:
    return char_vocab(count_chars([text]), min_count)


def char_vocab(counts: dict, min_count: int = 1) -> dict:
    """The vocabulary of a text whose characters occur `counts` times."""
    kept = [c for c, n in counts.items() if n >= min_count]
    rare = len(counts) - len(kept)
    tokens = sorted(kept + ([UNKNOWN_CHAR] if rare and UNKNOWN_CHAR not in kept else []))
    return {"unit": "char", "tokens": tokens, "unknown": UNKNOWN_CHAR if rare else None}


def outside_vocab(counts: dict, vocab: dict) -> dict:
    """The characters of a text (`counts`: how often each occurs) that `vocab` has no token of
    their own for, with their counts: they map to its unknown token."""
    known = set(vocab["tokens"]) - {vocab.get("unknown")}
    return {c: n for c, n in sorted(counts.items()) if c not in known}


def id_dtype(vocab_size: int):
    """The smallest unsigned integer type that holds every id."""
    return np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32


def encode_chars(text: str, vocab: dict, source: str = "text") -> np.ndarray:
    """Map each character to its id; characters outside the vocabulary map to its unknown
    token, or are refused by name when it has none."""
    tokens = vocab["tokens"]
    keys = np.array([ord(c) for c in tokens], dtype=np.uint32)
    order = np.argsort(keys)  # token ids by code point, for a binary search of each character
    points = code_points(text)
    at = np.searchsorted(keys[order], points).clip(max=len(keys) - 1)
    known = keys[order[at]] == points
    ids = order[at]
    if not known.all():
        unknown = tokens.index(vocab["unknown"]) if vocab.get("unknown") in tokens else None
        if unknown is None:
            missing = [chr(p) for p in np.unique(points[~known]).tolist()]
            raise UserError(f"{source} has characters outside the vocabulary: "
                            + ", ".join(repr(c) for c in missing[:20])
                            + "; remove them, or choose text made of the training corpus' characters")
        ids[~known] = unknown
    return ids.astype(id_dtype(len(tokens)))


def decode_chars(ids, vocab: dict) -> str:
    tokens = vocab["tokens"]
    return "".join(tokens[i] for i in ids)


def encode_words(words: list[str], vocab: dict) -> list[int]:
    """Word ids; words outside the vocabulary map to its unknown token."""
    index = {w: i for i, w in enumerate(vocab["tokens"])}
    unknown = index[vocab["unknown"]]
    return [index.get(w, unknown) for w in words]


def read_vocab(path) -> dict:
    try:
        vocab = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read vocabulary {path}: {err}; run `dvc repro encode-vocab`")
    return vocab
