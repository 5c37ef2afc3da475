"""Vocabularies and text: a vocabulary is a sorted list of tokens (characters or words); a
token's id is its index. When rare tokens were folded away, `unknown` names the token that
stands for them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from errors import UserError

UNKNOWN_CHAR = "\ufffd"


def build_char_vocab(text: str, min_count: int = 1) -> dict:
    counts = Counter(text)
    kept = [c for c, n in counts.items() if n >= min_count]
    rare = len(counts) - len(kept)
    tokens = sorted(kept + ([UNKNOWN_CHAR] if rare and UNKNOWN_CHAR not in kept else []))
    return {"unit": "char", "tokens": tokens, "unknown": UNKNOWN_CHAR if rare else None}


def id_dtype(vocab_size: int):
    """The smallest unsigned integer type that holds every id."""
    return np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32


def encode_chars(text: str, vocab: dict, source: str = "text") -> np.ndarray:
    """Map each character to its id; characters outside the vocabulary map to its unknown
    token, or are refused by name when it has none."""
    index = {c: i for i, c in enumerate(vocab["tokens"])}
    unknown = index.get(vocab["unknown"]) if vocab.get("unknown") else None
    missing = sorted({c for c in set(text) if c not in index})
    if missing and unknown is None:
        raise UserError(f"{source} has characters outside the vocabulary: "
                        + ", ".join(repr(c) for c in missing[:20])
                        + "; remove them, or choose text made of the training corpus' characters")
    ids = [index.get(c, unknown) for c in text]
    return np.asarray(ids, dtype=id_dtype(len(vocab["tokens"])))


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
