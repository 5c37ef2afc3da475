"""Vocabularies and text: a vocabulary is a sorted list of tokens (characters or words); a
token's id is its index. When rare tokens were folded away, `unknown` names the token that
stands for them."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from lstm_textgen.errors import UserError
from lstm_textgen.files import sha256_file

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
    """The text of character ids: one table lookup for all of them (a million ids in a few
    milliseconds, where a Python loop takes a second)."""
    tokens = vocab["tokens"]
    if not all(len(t) == 1 for t in tokens):  # a vocabulary saved with longer tokens: one at a time
        return "".join(tokens[i] for i in ids)
    points = np.array([ord(t) for t in tokens], dtype="<u4")
    return points[np.asarray(ids, dtype=np.intp)].tobytes().decode("utf-32-le", "surrogatepass")


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


def read_base_vocab(path: str) -> dict:
    """A base model's character vocabulary, as its encode-vocab wrote it."""
    try:
        base = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"params.yaml: encode-vocab.base_vocab = {path!r}: no such file. Bring the base model's "
                        f"vocabulary in with `dvc import <base repo> data/vocab/chars.json -o {path}` (docs/own-text.md), "
                        "or `dvc pull` if this project imports it already")
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the base vocabulary {path} ({err}); `dvc update {path}.dvc` fetches it again")
    if not (isinstance(base, dict) and base.get("unit") == "char" and isinstance(base.get("tokens"), list)):
        raise UserError(f"{path} is not a character vocabulary (data/vocab/chars.json of a project like this one)")
    return base


def on_base(base: dict, path: str, counts: dict, cleaning: dict, corpus: Path) -> dict:
    """The vocabulary for a corpus (`counts`) trained on from a base model: the base's tokens;
    a corpus character outside them is refused by name if the base has no unknown token."""
    outside = outside_vocab(counts, base)
    if outside and not base.get("unknown"):
        shown = ", ".join(f"{c!r} ({n:,})" for c, n in sorted(outside.items(), key=lambda cn: -cn[1])[:20])
        raise UserError(
            f"{corpus} has {len(outside)} characters that the base vocabulary {path} lacks, and it has no unknown "
            f"token to map them to: {shown}. Clean them away (strip-boilerplate.lowercase, ascii_punctuation), "
            "or pretrain the base with encode-vocab.min_count of 2 or more, so that its rare characters share "
            "an unknown token")
    if base.get("cleaning") not in (None, cleaning):
        print(f"warning: the base model's text was cleaned with {base['cleaning']}, this corpus with {cleaning}: "
              f"{sum(outside.values()):,} characters fall outside its vocabulary", file=sys.stderr)
    return {"unit": "char", "tokens": base["tokens"], "unknown": base.get("unknown"), "cleaning": cleaning,
            "base": {"path": path, "sha256": sha256_file(path)}}
